package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// InvalidationKind says what an Invalidation drops.
type InvalidationKind byte

const (
	// InvalidateAll drops every entry. Generation carries the new flush
	// generation.
	InvalidateAll InvalidationKind = 'A'
	// InvalidatePrincipal drops the entries of principal ID.
	InvalidatePrincipal InvalidationKind = 'P'
	// InvalidateResync is never sent: the Invalidator raises it locally when
	// it may have missed messages (its subscription was re-established), so
	// handlers drop everything they hold locally.
	InvalidateResync InvalidationKind = 'R'
)

func (k InvalidationKind) String() string {
	switch k {
	case InvalidateAll:
		return "all"
	case InvalidatePrincipal:
		return "principal"
	case InvalidateResync:
		return "resync"
	}
	return "unknown"
}

// Invalidation is one message on the invalidation channel.
type Invalidation struct {
	Kind       InvalidationKind
	ID         string // principal id
	Generation uint64 // for InvalidateAll
}

// invalidationVersion is the first byte of every message, so a replica
// ignores messages in a format it does not know.
const invalidationVersion = 1

// MaxInvalidationID bounds the id in a message.
const MaxInvalidationID = 1024

// MarshalBinary encodes m: version byte, kind byte, then the generation in
// decimal (InvalidateAll) or the id.
func (m Invalidation) MarshalBinary() ([]byte, error) {
	b := []byte{invalidationVersion, byte(m.Kind)}
	switch m.Kind {
	case InvalidateAll:
		return strconv.AppendUint(b, m.Generation, 10), nil
	case InvalidatePrincipal:
		if m.ID == "" || len(m.ID) > MaxInvalidationID || !utf8.ValidString(m.ID) {
			return nil, errors.New("cache: invalidation id must be 1-1024 bytes of UTF-8")
		}
		return append(b, m.ID...), nil
	}
	return nil, fmt.Errorf("cache: invalidation kind %q cannot be sent", byte(m.Kind))
}

// ParseInvalidation decodes a message from the channel. The bytes come from
// anyone who can publish to Redis, so it checks everything.
func ParseInvalidation(b []byte) (Invalidation, error) {
	if len(b) < 2 || b[0] != invalidationVersion {
		return Invalidation{}, errors.New("cache: invalidation message: unknown version")
	}
	m := Invalidation{Kind: InvalidationKind(b[1])}
	p := b[2:]
	switch m.Kind {
	case InvalidateAll:
		n, err := strconv.ParseUint(string(p), 10, 64)
		if err != nil {
			return Invalidation{}, errors.New("cache: invalidation message: bad generation")
		}
		m.Generation = n
	case InvalidatePrincipal:
		if len(p) == 0 || len(p) > MaxInvalidationID || !utf8.Valid(p) {
			return Invalidation{}, errors.New("cache: invalidation message: bad id")
		}
		m.ID = string(p)
	default:
		return Invalidation{}, errors.New("cache: invalidation message: unknown kind")
	}
	return m, nil
}

// InvalidatorOptions configures an Invalidator.
type InvalidatorOptions struct {
	// Channel is the pub/sub channel. Default: prefix + "invalidate".
	Channel string
	// Poll is how often the flush generation is re-read as a safety net for
	// lost messages. Default 1s.
	Poll time.Duration
	// Timeout bounds each publish and poll. Default 1s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Handler applies an invalidation to what this replica holds locally.
// Handlers run on the Invalidator's goroutine, one at a time; they must not
// block for long.
type Handler func(ctx context.Context, m Invalidation)

// Invalidator spreads invalidations to every replica through Redis pub/sub
// on one channel under the key prefix, and owns the shared flush
// Generation.
//
// API-key revocations do not pass through here: the Redis key store
// (identity/apikey) publishes them on its own channel, and identity entries
// of API keys are re-verified on every request, so no cache entry outlives
// a revocation.
//
// Delivery: pub/sub is at-most-once, so two safety nets back it: the flush
// generation is re-read every Poll (a missed flush-all is applied within one
// interval), and when the subscription is re-established after a
// disconnect, handlers get InvalidateResync and drop every local entry.
type Invalidator struct {
	client  redis.UniversalClient
	gen     *Generation
	channel string
	poll    time.Duration
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	handlers []Handler

	ready     chan struct{}
	readyOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// NewInvalidator returns an Invalidator on client for keys under prefix.
// Register handlers, then Start it.
func NewInvalidator(client redis.UniversalClient, prefix string, opts InvalidatorOptions) *Invalidator {
	if opts.Channel == "" {
		opts.Channel = prefix + "invalidate"
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultInvalidationPoll
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Invalidator{
		client:  client,
		gen:     NewGeneration(client, prefix+"gen"),
		channel: opts.Channel,
		poll:    opts.Poll,
		timeout: opts.Timeout,
		log:     opts.Logger,
		ready:   make(chan struct{}),
	}
}

// Generation returns the shared flush generation; pass it to every Redis
// cache on this client.
func (i *Invalidator) Generation() *Generation { return i.gen }

// Channel returns the pub/sub channel name.
func (i *Invalidator) Channel() string { return i.channel }

// Handle registers h for every invalidation, including the ones this
// replica publishes.
func (i *Invalidator) Handle(h Handler) {
	i.mu.Lock()
	i.handlers = append(i.handlers, h)
	i.mu.Unlock()
}

func (i *Invalidator) dispatch(ctx context.Context, m Invalidation) {
	i.mu.Lock()
	hs := i.handlers
	i.mu.Unlock()
	for _, h := range hs {
		h(ctx, m)
	}
}

// Ready is closed once the subscription is confirmed by Redis.
func (i *Invalidator) Ready() <-chan struct{} { return i.ready }

// Start subscribes and starts polling the flush generation. It returns at
// once; Redis being down is not an error (the subscription retries). Stop
// with Close.
func (i *Invalidator) Start(ctx context.Context) {
	ctx, i.stop = context.WithCancel(ctx)
	ps := i.client.Subscribe(ctx, i.channel)
	i.wg.Add(2)
	go func() {
		defer i.wg.Done()
		defer ps.Close()
		i.receive(ctx, ps)
	}()
	go func() {
		defer i.wg.Done()
		i.pollLoop(ctx)
	}()
}

// Close stops the subscription and the poller.
func (i *Invalidator) Close() {
	if i.stop != nil {
		i.stop()
		i.wg.Wait()
	}
}

func (i *Invalidator) receive(ctx context.Context, ps *redis.PubSub) {
	ch := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(time.Second))
	subscribed := false
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			switch msg := msg.(type) {
			case *redis.Subscription:
				if msg.Kind != "subscribe" {
					continue
				}
				if subscribed {
					// A new subscription after a disconnect: messages sent
					// meanwhile are lost, so drop what they could have
					// invalidated.
					i.log.Warn("cache invalidation: resubscribed; dropping local cache entries", "channel", i.channel)
					i.dispatch(ctx, Invalidation{Kind: InvalidateResync})
				}
				subscribed = true
				i.readyOnce.Do(func() { close(i.ready) })
			case *redis.Message:
				m, err := ParseInvalidation([]byte(msg.Payload))
				if err != nil {
					i.log.Warn("cache invalidation: ignoring message", "channel", i.channel, "error", err)
					continue
				}
				if m.Kind == InvalidateAll {
					i.gen.Observe(m.Generation)
				}
				i.dispatch(ctx, m)
			}
		}
	}
}

func (i *Invalidator) pollLoop(ctx context.Context) {
	t := time.NewTicker(i.poll)
	defer t.Stop()
	for {
		i.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (i *Invalidator) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	changed, err := i.gen.Refresh(ctx)
	if err != nil {
		return // Redis down: the caches' breaker reports it
	}
	if changed {
		g, _ := i.gen.Current()
		i.dispatch(ctx, Invalidation{Kind: InvalidateAll, Generation: g})
	}
}

// Publish sends m to every replica, this one included.
func (i *Invalidator) Publish(ctx context.Context, m Invalidation) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	return i.client.Publish(ctx, i.channel, b).Err()
}

// FlushAll bumps the flush generation, which makes every Redis entry
// unreachable, applies it here and tells every replica to drop its local
// entries.
func (i *Invalidator) FlushAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	g, err := i.gen.Bump(ctx)
	if err != nil {
		return fmt.Errorf("cache: flush: %w", err)
	}
	m := Invalidation{Kind: InvalidateAll, Generation: g}
	i.dispatch(ctx, m)
	return i.Publish(ctx, m)
}
