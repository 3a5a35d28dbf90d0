package pair

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// multiAddr is a voter's address in the raft configuration: every path to
// it, comma-separated (management network first, then the sync link).
type multiAddr []string

func (m multiAddr) Network() string { return "tcp" }
func (m multiAddr) String() string  { return strings.Join(m, ",") }

// pathStream is raft's StreamLayer over several independent paths (V1: the
// management network and the dedicated A-B sync link). It listens on every
// local address and dials every address of a peer at once, keeping the
// first connection that opens; when one path fails, raft's next
// connection simply takes the other. So a peer looks silent — and a
// takeover can start — only when all paths are silent.
//
// Every connection is TLS 1.3 with mutual authentication (see creds.go):
// a peer that cannot prove it holds the pair's transport credential is
// dropped in the handshake, before raft reads a byte from it.
type pathStream struct {
	local   multiAddr
	tls     *tls.Config
	timeout time.Duration // handshake deadline
	log     *slog.Logger
	// remoteClosed is told when a peer closed (or reset) a connection it
	// had opened to us: the fast failure detector (fast.go).
	remoteClosed func(remote net.Addr)
	lns          []net.Listener
	conns        chan net.Conn
	done         chan struct{}
	once         sync.Once
}

func newPathStream(addrs []string, cred *tls.Config, timeout time.Duration, log *slog.Logger, remoteClosed func(net.Addr)) (*pathStream, error) {
	if cred == nil {
		return nil, errors.New("pair: the raft transport needs its TLS credential")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &pathStream{local: addrs, tls: cred, timeout: timeout, log: log, remoteClosed: remoteClosed,
		conns: make(chan net.Conn), done: make(chan struct{})}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("pair: listen %s: %w", a, err)
		}
		s.lns = append(s.lns, ln)
		go s.accept(ln)
	}
	return s, nil
}

func (s *pathStream) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		go s.handshake(c)
	}
}

// handshake authenticates an accepted connection and hands it to raft.
func (s *pathStream) handshake(c net.Conn) {
	tc := tls.Server(c, s.tls)
	tc.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	if err := tc.Handshake(); err != nil {
		// A dial that lost the race to another path, or a liveness probe
		// (fast.go), closes before the handshake: not worth a warning.
		lvl := slog.LevelWarn
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			lvl = slog.LevelDebug
		}
		s.log.Log(context.Background(), lvl, "pair: refused a raft connection without the pair's credential",
			"remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	wc := &watchedConn{Conn: tc, gone: s.remoteClosed}
	select {
	case s.conns <- wc:
	case <-s.done:
		tc.Close()
	}
}

func (s *pathStream) handshakeTimeout() time.Duration {
	return max(s.timeout, time.Second) // a loaded CMC can take a while; raft's own timeouts bound the rest
}

// watchedConn reports an authenticated connection the remote side closed
// or reset (a read error while we still had it open), once.
type watchedConn struct {
	net.Conn
	gone   func(net.Addr)
	closed atomic.Bool
	once   sync.Once
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.gone != nil && !c.closed.Load() {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			c.once.Do(func() { c.gone(c.Conn.RemoteAddr()) })
		}
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func (s *pathStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *pathStream) Close() error {
	s.once.Do(func() {
		close(s.done)
		for _, ln := range s.lns {
			ln.Close()
		}
	})
	return nil
}

func (s *pathStream) Addr() net.Addr { return s.local }

// Dial opens an authenticated connection over every path of address at
// once and returns the first whose TLS handshake succeeds.
func (s *pathStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	paths := strings.Split(string(address), ",")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	out := make(chan res, len(paths))
	for _, p := range paths {
		go func(p string) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", p)
			if err != nil {
				out <- res{nil, err}
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			t := tls.Client(c, s.tls)
			if err := t.HandshakeContext(ctx); err != nil {
				c.Close()
				out <- res{nil, fmt.Errorf("%s: %w", p, err)}
				return
			}
			out <- res{t, nil}
		}(p)
	}
	var errs []error
	var won net.Conn
	for range paths {
		r := <-out
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case won == nil:
			won = r.c
			cancel() // stop the slower paths
		default:
			r.c.Close()
		}
		if won != nil {
			// The others finish (and are closed) in the background.
			go func(n int) {
				for i := 0; i < n; i++ {
					if r := <-out; r.c != nil {
						r.c.Close()
					}
				}
			}(len(paths) - 1 - len(errs))
			return won, nil
		}
	}
	return nil, fmt.Errorf("pair: no path to %s: %w", address, errors.Join(errs...))
}

// newTransport returns raft's network transport over the paths.
func newTransport(addrs []string, cred *tls.Config, timeout time.Duration, log *slog.Logger, remoteClosed func(net.Addr)) (*raft.NetworkTransport, *pathStream, error) {
	st, err := newPathStream(addrs, cred, timeout, log, remoteClosed)
	if err != nil {
		return nil, nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  st,
		MaxPool: 3,
		// No pipelined replication (MaxRPCsInFlight < 2): hashicorp/raft's
		// pipeline can deadlock when a follower answers Success=false
		// (pipelineDecode returns while the send loop parks on a full
		// channel; the follower then never gets another entry and the
		// leader's Shutdown hangs; seen here after a fast election, and
		// as grafana/pyroscope#5518). A CMC's write rate needs no pipeline.
		MaxRPCsInFlight: 1,
		Timeout:         timeout,
		Logger:          hclogFor(log, "raft-net"),
	}), st, nil
}

// hclogFor routes raft's hclog output into slog.
func hclogFor(log *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: slogWriter{log}, Level: hclog.Info, DisableTime: true})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	switch {
	case strings.Contains(msg, "[ERROR]"):
		lvl = slog.LevelError
	case strings.Contains(msg, "[WARN]"):
		lvl = slog.LevelWarn
	case strings.Contains(msg, "[DEBUG]"), strings.Contains(msg, "[TRACE]"):
		lvl = slog.LevelDebug
	}
	w.log.Log(context.Background(), lvl, msg)
	return len(p), nil
}

var _ io.Writer = slogWriter{}
