package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"cmcd/daemon"
	"cmcd/pair"
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
	key := fs.String("key", "", "the witness key file (cmcd witness-key): authenticates the raft transport")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := daemon.WitnessConfig{ID: *id, Dir: *data, Listen: listen, Heartbeat: *hb, KeyFile: *key}
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

// witnessKey derives the witness key from the pair key: the raft
// transport key (HKDF of the pair key, one-way), written as 64 hex digits.
func witnessKey(args []string) int {
	fs := flag.NewFlagSet("cmcd witness-key", flag.ContinueOnError)
	pairKey := fs.String("pair-key", "", "the pair key file of the modules")
	out := fs.String("out", "", "write the witness key here (mode 0600); empty: standard output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	k, err := pair.LoadKeyFile(*pairKey)
	if err == nil {
		k, err = pair.TransportKey(k)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmcd witness-key:", err)
		return 1
	}
	line := hex.EncodeToString(k) + "\n"
	if *out == "" {
		fmt.Print(line)
		return 0
	}
	if err := os.WriteFile(*out, []byte(line), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "cmcd witness-key:", err)
		return 1
	}
	return 0
}
