package ipmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// ErrClosed is returned by a Source after Close.
var ErrClosed = errors.New("ipmi node source closed")

// UnreachableError reports a node BMC that did not answer (or refused the
// session). It wraps board.ErrUnreachable and the cause.
type UnreachableError struct {
	Slot int
	Addr string
	// RetryAt is the earliest time the node is tried again; calls before
	// then fail at once with this error.
	RetryAt time.Time
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("node %d (BMC %s): %v: %v (next attempt at %s)",
		e.Slot, e.Addr, board.ErrUnreachable, e.Err, e.RetryAt.Format(time.RFC3339))
}

// Unwrap returns board.ErrUnreachable and the cause.
func (e *UnreachableError) Unwrap() []error { return []error{board.ErrUnreachable, e.Err} }

// transportError marks an error of the IPMI transport (no answer, session
// broken) as opposed to a BMC that answered with a completion code.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// Option configures a Source.
type Option func(*Source)

// WithClock sets the clock used for backoff and cache ages (tests use
// ipmitest.FakeClock).
func WithClock(c Clock) Option { return func(s *Source) { s.clock = c } }

// WithLogger sets the logger; slog.Default() otherwise.
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithBackoff sets the reconnection backoff of unreachable nodes.
func WithBackoff(b Backoff) Option { return func(s *Source) { s.backoff = b } }

// WithSensorMaxAge sets how old the sensor readings of the last Node call
// may be for Faults to reuse them instead of reading the sensors again
// (default 2s; 0 makes Faults always read the sensors).
func WithSensorMaxAge(d time.Duration) Option { return func(s *Source) { s.sensorMaxAge = d } }

// Source is a board.NodeSource that reads and drives node BMCs over
// IPMI-over-LAN (RMCP+). Each node has its own session, opened on first use,
// its own lock and its own backoff: a dead node never delays the others.
type Source struct {
	nodes        map[int]*node
	slots        []int
	clock        Clock
	log          *slog.Logger
	backoff      Backoff
	sensorMaxAge time.Duration
	closed       atomic.Bool
}

var _ board.NodeSource = (*Source)(nil)

// New returns a Source for the configured nodes. No network traffic happens
// until a node is first used.
func New(cfg Config, opts ...Option) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{
		nodes:        map[int]*node{},
		clock:        realClock{},
		log:          slog.Default(),
		backoff:      DefaultBackoff,
		sensorMaxAge: 2 * time.Second,
	}
	for _, o := range opts {
		o(s)
	}
	for _, nc := range cfg.sorted() {
		n := &node{cfg: nc, src: s, io: make(chan struct{}, 1)}
		n.log = s.log.With(slog.Int("slot", nc.Slot), slog.String("bmc", nc.Addr()))
		s.nodes[nc.Slot] = n
		s.slots = append(s.slots, nc.Slot)
	}
	sort.Ints(s.slots)
	return s, nil
}

// Slots lists the configured node slots.
func (s *Source) Slots() []int { return append([]int(nil), s.slots...) }

// Close ends every node's session. Calls after Close return ErrClosed.
func (s *Source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			// Wait for the node's I/O to finish (bounded by its timeout),
			// then close its session.
			n.io <- struct{}{}
			n.dropClient(true)
			<-n.io
		}(n)
	}
	wg.Wait()
	return nil
}

func (s *Source) node(slot int) (*node, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	n, found := s.nodes[slot]
	if !found {
		return nil, fmt.Errorf("slot %d: %w", slot, board.ErrNoSuchNode)
	}
	return n, nil
}

// node is one node BMC: its session, its backoff and its caches.
type node struct {
	cfg NodeConfig
	src *Source
	log *slog.Logger

	// io is a one-slot semaphore held for every exchange with this BMC and
	// for the caches below; acquiring it honours the caller's context.
	io chan struct{}

	// Guarded by io.
	client  *client.Client
	sdr     *sdrCache
	sensors *sensorSnapshot
	sel     selCache
	faults  faultLog
	stats   stats

	// Guarded by mu (never held during I/O): reachability and backoff.
	mu        sync.Mutex
	failures  int
	retryAt   time.Time
	lastErr   error
	reachable bool
}

// stats counts a node's SEL work (tests check the incremental reads).
type stats struct {
	selEntryReads int // Get SEL Entry requests
	fullSELReads  int // whole-SEL reads
}

// unreachable returns the error for a node in backoff, or nil if it may be tried.
func (n *node) unreachable() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failures == 0 || !n.src.clock.Now().Before(n.retryAt) {
		return nil
	}
	return &UnreachableError{Slot: n.cfg.Slot, Addr: n.cfg.Addr(), RetryAt: n.retryAt, Err: n.lastErr}
}

// markFailed records a failure to reach the node and schedules the next attempt.
func (n *node) markFailed(cause error) error {
	n.mu.Lock()
	n.failures++
	now := n.src.clock.Now()
	n.retryAt = now.Add(n.src.backoff.delay(n.failures))
	n.lastErr = cause
	was := n.reachable
	n.reachable = false
	e := &UnreachableError{Slot: n.cfg.Slot, Addr: n.cfg.Addr(), RetryAt: n.retryAt, Err: cause}
	failures := n.failures
	n.mu.Unlock()
	if was || failures == 1 {
		n.log.Warn("node BMC unreachable", slog.String("err", cause.Error()), slog.Time("retryAt", e.RetryAt))
	}
	return e
}

// markOK records a successful exchange.
func (n *node) markOK() {
	n.mu.Lock()
	was := n.reachable
	failures := n.failures
	n.failures = 0
	n.lastErr = nil
	n.reachable = true
	n.mu.Unlock()
	if !was && failures > 0 {
		n.log.Info("node BMC reachable again")
	}
}

// do runs fn with an open session to the node: it refuses at once while the
// node is in backoff, serialises I/O on the node, opens the session lazily
// and turns transport failures into an UnreachableError (and backoff).
//
// When an established session stops answering, the BMC may just have lost
// it (a reboot, an evicted session): fn is run once more on a fresh session
// before the node counts as unreachable. Operations that must not run twice
// use doOnce.
func (s *Source) do(ctx context.Context, slot int, fn func(ctx context.Context, n *node) error) error {
	return s.run(ctx, slot, true, fn)
}

// doOnce is do without the second attempt on a fresh session.
func (s *Source) doOnce(ctx context.Context, slot int, fn func(ctx context.Context, n *node) error) error {
	return s.run(ctx, slot, false, fn)
}

func (s *Source) run(ctx context.Context, slot int, again bool, fn func(ctx context.Context, n *node) error) error {
	n, err := s.node(slot)
	if err != nil {
		return err
	}
	if err := n.unreachable(); err != nil {
		return err
	}
	select {
	case n.io <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("node %d: %w", slot, ctx.Err())
	}
	defer func() { <-n.io }()
	if s.closed.Load() {
		return ErrClosed
	}
	// Another caller may have failed while we waited for the lock.
	if err := n.unreachable(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		fresh := n.client == nil
		if fresh {
			c, err := n.connect(ctx, attempt > 0)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("node %d: connecting: %w", slot, ctx.Err())
				}
				return n.markFailed(err)
			}
			n.client = c
		}
		err = fn(ctx, n)
		var te *transportError
		switch {
		case err == nil:
			n.markOK()
			return nil
		case errors.As(err, &te):
			if ctx.Err() != nil {
				// The caller gave up; that says nothing about the node.
				return fmt.Errorf("node %d: %w", slot, ctx.Err())
			}
			n.dropClient(false)
			if again && !fresh && attempt == 0 {
				n.log.Info("session stopped answering; retrying on a new session", "err", err.Error())
				continue
			}
			return n.markFailed(err)
		default:
			// The BMC answered (with an error completion code or data we
			// could not use): it is reachable.
			n.markOK()
			return fmt.Errorf("node %d: %w", slot, err)
		}
	}
}

// connect opens an RMCP+ session with the configured cipher suite. A
// reconnect after a session stopped answering gets half the node's timeout
// in all, so that a hung BMC is declared unreachable after 1.5 timeouts,
// not 2.
func (n *node) connect(ctx context.Context, reconnect bool) (*client.Client, error) {
	cfg := n.cfg
	c, err := client.NewClient(cfg.Host, cfg.Port, cfg.Username, cfg.Password.Reveal())
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(cfg.Timeout)
	// One request may take Timeout: two tries of half of it each.
	c.WithTimeout(timeout / 2).WithRetry(1).
		WithCipherSuiteID(types.CipherSuiteID(cfg.CipherSuite)).
		// Operator covers everything this package does (chassis control,
		// clearing the SEL); ask no more than that.
		WithMaxPrivilegeLevel(types.PrivilegeLevelOperator)
	// Session setup is five exchanges.
	limit := 5 * timeout
	if reconnect {
		limit = timeout / 2
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		closeClient(c)
		return nil, fmt.Errorf("opening RMCP+ session (cipher suite %d, user %q): %w", cfg.CipherSuite, cfg.Username, err)
	}
	n.log.Debug("RMCP+ session open", slog.Any("node", cfg))
	return c, nil
}

// dropClient closes the node's session, politely (Close Session, bounded by
// the node's timeout) or not (socket only).
func (n *node) dropClient(polite bool) {
	if n.client == nil {
		return
	}
	c := n.client
	n.client = nil
	if polite {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n.cfg.Timeout))
		defer cancel()
		_ = c.Close(ctx)
		return
	}
	closeClient(c)
}

// closeClient releases a client's socket and keep-alive goroutine without
// waiting for the BMC.
func closeClient(c *client.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a cancelled context skips the Close Session exchange
	_ = c.Close(ctx)
}

// call sends one IPMI request and marks failures to get any answer as
// transport errors.
func (n *node) call(ctx context.Context, req types.Request, resp types.Response) error {
	err := n.client.Exchange(ctx, req, resp)
	if err == nil {
		return nil
	}
	if _, answered := types.IsResponseError(err); answered {
		return err
	}
	return &transportError{err: fmt.Errorf("%s: %w", req.Command().Name, err)}
}

// completionCode returns the IPMI completion code of err, if it is one.
func completionCode(err error) (uint8, bool) {
	if re, ok := types.IsResponseError(err); ok {
		return uint8(re.CompletionCode()), true
	}
	return 0, false
}
