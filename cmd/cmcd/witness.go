package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"cmcd/daemon"
)

// witness runs the pair's third, data-light voter.
func witness(args []string) int {
	fs := flag.NewFlagSet("cmcd witness", flag.ContinueOnError)
	data := fs.String("data", "", "directory for the raft log and snapshots")
	id := fs.String("id", "W", "this witness's voter ID")
	var listen, peers multi
	fs.Var(&listen, "listen", "raft listen address (repeatable)")
	fs.Var(&peers, "peer", "voter ID=addr[,addr...][;witness], every voter including this one (repeatable)")
	hb := fs.String("heartbeat", "", "raft heartbeat timeout (default 200ms; same as the modules)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := daemon.WitnessConfig{ID: *id, Dir: *data, Listen: listen, Heartbeat: *hb}
	for _, p := range peers {
		pp, err := daemon.ParsePeer(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cmcd witness:", err)
			return 2
		}
		c.Peers = append(c.Peers, pp)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "cmcd witness: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.RunWitness(ctx, c, log); err != nil {
		log.Error("cmcd witness stopped", "err", err)
		return 1
	}
	return 0
}
