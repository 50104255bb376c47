package apikey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authzd/authzd/internal/breaker"
)

// RedisStoreOptions configures a RedisStore.
type RedisStoreOptions struct {
	// Prefix starts every key and the channel, e.g. "authzd:".
	Prefix string
	// CacheTTL is how long a record read from Redis is kept in memory.
	// Revocations drop it at once (pub/sub, and a poll of the revocation
	// counter as a safety net), so this only bounds reads while Redis is
	// unreachable. Default 30s.
	CacheTTL time.Duration
	// StaleFor lets a record this replica has already read keep verifying
	// for this long past CacheTTL while Redis cannot be reached (serve
	// stale). Revocations seen before the outage still apply; an id never
	// read stays unavailable. The cost: a revocation written to Redis by
	// another replica while this one cannot reach Redis (a partition)
	// reaches this one only when Redis answers again, so a revoked key can
	// keep working here for up to CacheTTL + StaleFor. 0 disables: copies
	// are served for CacheTTL at most, as without an outage.
	StaleFor time.Duration
	// Breaker configures the breaker around this store's Redis calls, so
	// lookups during an outage do not each wait for a timeout. Zero fields:
	// 5 failures, open for 2s.
	Breaker breaker.Config
	// NegativeTTL is how long an unknown id is remembered, so a flood of
	// made-up keys costs one Redis read per id. Creating a key clears it
	// on every replica. Default 1s.
	NegativeTTL time.Duration
	// Poll is how often the revocation counter is re-read, in case a
	// pub/sub message was lost. Default 1s.
	Poll time.Duration
	// Timeout bounds administrative calls (create, list, revoke) and the
	// poll. Lookups use the caller's context and the client's timeouts.
	// Default 2s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// RedisStore keeps key records in Redis, so every replica shares the same
// keys. Like the file store it holds hashes only.
//
// Layout under the prefix (one hash tag, so every key lives in one Cluster
// slot and a list is one MGET-like read):
//
//	<prefix>{apikeys}:key:<id>     hash: "record" (JSON), "revoked_at" (RFC 3339)
//	<prefix>{apikeys}:ids          set of every id
//	<prefix>{apikeys}:revocations  counter, incremented by every revocation
//	<prefix>apikeys:changed        pub/sub channel: the id of a created or revoked key
//
// Each replica keeps records it has read in memory. A revocation is a write
// to Redis, an INCR of the counter and a message on the channel: every
// replica drops that record on the message, and drops all records when it
// sees the counter move (polled every second), so a revocation is seen
// everywhere within about a second even if a message is lost.
//
// When Redis fails (a lookup or the poll errs, or the subscription is
// re-established), a breaker stops lookups from each waiting for a
// timeout, and the copies in memory stop counting as fresh: each lookup
// asks Redis first and uses its copy only when Redis does not answer, for
// up to CacheTTL + StaleFor after the record was read. An id this replica
// never read is unavailable. The first Redis answer after a failure reads
// the revocation counter with it; if the counter moved (or is missing),
// every copy is dropped before any is used again.
type RedisStore struct {
	client  redis.UniversalClient
	base    string
	idsKey  string
	revKey  string
	channel string
	opts    RedisStoreOptions
	now     func() time.Time

	mu      sync.RWMutex
	local   map[string]localRecord
	lastRev atomic.Int64
	revSeen atomic.Bool

	breaker *breaker.Breaker
	// failEpoch counts Redis failures (and lost subscriptions); reconciled
	// is the failEpoch up to which the revocation counter has been checked
	// since. While they differ, copies in memory are not trusted as fresh:
	// every lookup asks Redis, and falls back to its copy only if Redis
	// does not answer.
	failEpoch  atomic.Uint64
	reconciled atomic.Uint64
	recMu      sync.Mutex // serializes reading the counter and dropping copies

	servedStale, unavailable, reconciles atomic.Uint64
	staleLogged                          atomic.Bool

	ready     chan struct{}
	readyOnce sync.Once
}

type localRecord struct {
	rec *Record // nil: not found
	exp time.Time
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store in client. Call Watch to receive
// revocations from other replicas.
func NewRedisStore(client redis.UniversalClient, opts RedisStoreOptions) *RedisStore {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 30 * time.Second
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StaleFor < 0 {
		opts.StaleFor = 0
	}
	if opts.Breaker.Failures <= 0 {
		opts.Breaker.Failures = 5
	}
	if opts.Breaker.OpenFor <= 0 {
		opts.Breaker.OpenFor = 2 * time.Second
	}
	base := opts.Prefix + "{apikeys}:"
	s := &RedisStore{
		client: client, base: base, idsKey: base + "ids", revKey: base + "revocations",
		channel: opts.Prefix + "apikeys:changed", opts: opts, now: time.Now,
		local: make(map[string]localRecord), ready: make(chan struct{}),
		breaker: breaker.New(opts.Breaker),
	}
	log := opts.Logger
	s.breaker.OnChange(func(state int) {
		switch state {
		case breaker.Open:
			log.Warn("api key store: Redis breaker open; lookups skip Redis", "open_for", opts.Breaker.OpenFor, "error", s.breaker.Stats().LastError)
		case breaker.Closed:
			log.Info("api key store: Redis breaker closed")
		}
	})
	return s
}

// RedisStoreStats counts what the store saw since it was created.
type RedisStoreStats struct {
	// Breaker is the breaker around lookups and the revocation poll.
	Breaker breaker.Stats
	// ServedStale is the number of lookups answered from a copy in memory
	// because Redis could not be reached.
	ServedStale uint64
	// Unavailable is the number of lookups that failed because Redis could
	// not be reached and no usable copy was in memory.
	Unavailable uint64
	// Reconciles is the number of times the revocation counter was checked
	// after Redis failed (a recovery), before copies were trusted again.
	Reconciles uint64
	// Reconciling reports whether Redis failed since the counter was last
	// checked: copies in memory are then used only when Redis does not
	// answer.
	Reconciling bool
}

// Stats returns the counters, for metrics.
func (s *RedisStore) Stats() RedisStoreStats {
	return RedisStoreStats{
		Breaker: s.breaker.Stats(), ServedStale: s.servedStale.Load(), Unavailable: s.unavailable.Load(),
		Reconciles: s.reconciles.Load(), Reconciling: s.suspect(),
	}
}

// suspect reports whether Redis failed since the revocation counter was
// last checked.
func (s *RedisStore) suspect() bool { return s.failEpoch.Load() != s.reconciled.Load() }

// errBreakerOpen is a Redis call skipped by the breaker.
var errBreakerOpen = errors.New("redis breaker open")

// done classifies a Redis result for the breaker and reports whether Redis
// answered.
func (s *RedisStore) done(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		s.breaker.Success()
		return true
	case ctx.Err() != nil:
		// The caller gave up; that says nothing about Redis.
		s.breaker.Neutral()
	default:
		s.breaker.FailureErr(err)
		s.failEpoch.Add(1)
	}
	return false
}

func (s *RedisStore) recordKey(id string) string { return s.base + "key:" + id }

// storedRecord is the JSON form of a record in Redis. The revocation time
// is a separate hash field, so revoking never rewrites the record.
type storedRecord struct {
	ID          string    `json:"id"`
	Hash        string    `json:"hash"`
	Owner       string    `json:"owner"`
	Scopes      []string  `json:"scopes,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// decodeRecord reads a record from its Redis hash fields. The bytes come
// from Redis, so everything is checked.
func decodeRecord(id string, fields map[string]string) (*Record, error) {
	raw, ok := fields["record"]
	if !ok {
		return nil, ErrNotFound
	}
	var sr storedRecord
	if err := json.Unmarshal([]byte(raw), &sr); err != nil {
		return nil, fmt.Errorf("api key %s: stored record is not valid JSON", id)
	}
	if sr.ID != id {
		return nil, fmt.Errorf("api key %s: stored record has id %q", id, sr.ID)
	}
	r := &Record{ID: sr.ID, Hash: sr.Hash, Owner: sr.Owner, Scopes: sr.Scopes, Description: sr.Description, CreatedAt: sr.CreatedAt, ExpiresAt: sr.ExpiresAt}
	if v, ok := fields["revoked_at"]; ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			// Unreadable revocation: treat the key as revoked now.
			t = time.Unix(0, 0)
		}
		r.RevokedAt = t
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Lookup returns the record with id: from memory when this replica read it
// recently and no revocation happened since, else with one Redis read.
// When Redis cannot be reached, a copy this replica read before is served
// for up to CacheTTL + StaleFor; otherwise the lookup fails (unavailable).
func (s *RedisStore) Lookup(ctx context.Context, id string) (*Record, error) {
	now := s.now()
	s.mu.RLock()
	l, ok := s.local[id]
	s.mu.RUnlock()
	suspect := s.suspect()
	if ok && now.Before(l.exp) && !suspect {
		if l.rec == nil {
			return nil, ErrNotFound
		}
		return l.rec, nil
	}
	fields, err := s.fetch(ctx, id, suspect)
	if err != nil {
		return s.fallback(ctx, id, l, ok, now, err)
	}
	rec, err := decodeRecord(id, fields)
	switch {
	case errors.Is(err, ErrNotFound):
		s.remember(id, nil, now.Add(s.opts.NegativeTTL))
		return nil, ErrNotFound
	case err != nil:
		return nil, err
	}
	s.remember(id, rec, now.Add(s.opts.CacheTTL))
	return rec, nil
}

// fetch reads the record with id. After a Redis failure it reads the
// revocation counter in the same round trip and reconciles before the
// answer is used, so a key revoked while this replica could not reach
// Redis is dropped from memory as soon as Redis answers again.
func (s *RedisStore) fetch(ctx context.Context, id string, reconcile bool) (map[string]string, error) {
	if !s.breaker.Allow() {
		return nil, errBreakerOpen
	}
	if !reconcile {
		fields, err := s.client.HGetAll(ctx, s.recordKey(id)).Result()
		if !s.done(ctx, err) {
			return nil, err
		}
		return fields, nil
	}
	epoch := s.failEpoch.Load()
	var get *redis.StringCmd
	var hget *redis.MapStringStringCmd
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.revKey)
		hget = p.HGetAll(ctx, s.recordKey(id))
		return nil
	})
	n, present, err := counterValue(get)
	if err == nil {
		err = hget.Err()
	}
	if !s.done(ctx, err) {
		return nil, err
	}
	s.observe(n, present, epoch, true)
	return hget.Val(), nil
}

// counterValue reads the revocation counter from a GET; present is false
// when the counter does not exist.
func counterValue(get *redis.StringCmd) (n int64, present bool, err error) {
	v, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err = strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("api key store: revocation counter %q is not a number", v)
	}
	return n, true, nil
}

// observe takes a reading of the revocation counter made when failEpoch
// was epoch. Copies are dropped when the counter moved, on the first
// reading, and, after a failure, when the counter is missing (a Redis that
// restarted empty cannot be told from one that never saw a revocation).
// Then failures up to epoch count as reconciled.
func (s *RedisStore) observe(n int64, present bool, epoch uint64, suspect bool) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	old := s.lastRev.Swap(n)
	drop := old != n || !s.revSeen.Load() || suspect && !present
	if drop {
		s.forgetAll()
	}
	s.revSeen.Store(true)
	if prev := s.reconciled.Load(); epoch > prev {
		s.reconciled.Store(epoch) // recMu: no other writer
		s.reconciles.Add(1)
		s.staleLogged.Store(false)
		s.opts.Logger.Info("api key store: Redis answers again; revocation counter checked", "dropped_local_copies", drop)
	}
}

// fallback answers a lookup Redis did not answer: from a copy this replica
// read before, within CacheTTL + StaleFor, else unavailable.
func (s *RedisStore) fallback(ctx context.Context, id string, l localRecord, ok bool, now time.Time, cause error) (*Record, error) {
	if ok && ctx.Err() == nil {
		if l.rec != nil && now.Before(l.exp.Add(s.opts.StaleFor)) {
			s.servedStale.Add(1)
			if s.staleLogged.CompareAndSwap(false, true) {
				s.opts.Logger.Warn("api key store: Redis unreachable; serving API keys this replica read before from memory",
					"stale_for", s.opts.StaleFor, "key_id", id, "error", cause)
			}
			return l.rec, nil
		}
		if l.rec == nil && now.Before(l.exp) {
			return nil, ErrNotFound
		}
	}
	s.unavailable.Add(1)
	return nil, fmt.Errorf("api key store: %w", cause)
}

// maxLocalRecords bounds the in-memory copies, so a flood of made-up key
// ids (each remembered as unknown) cannot grow memory without limit.
const maxLocalRecords = 100_000

func (s *RedisStore) remember(id string, rec *Record, exp time.Time) {
	s.mu.Lock()
	if len(s.local) >= maxLocalRecords {
		now := s.now()
		for k, l := range s.local {
			if l.rec == nil || !now.Before(l.exp.Add(s.opts.StaleFor)) {
				delete(s.local, k)
			}
		}
		if len(s.local) >= maxLocalRecords {
			clear(s.local) // only a cache: the next lookups read Redis
		}
	}
	s.local[id] = localRecord{rec: rec, exp: exp}
	s.mu.Unlock()
}

func (s *RedisStore) forget(id string) {
	s.mu.Lock()
	delete(s.local, id)
	s.mu.Unlock()
}

func (s *RedisStore) forgetAll() {
	s.mu.Lock()
	clear(s.local)
	s.mu.Unlock()
}

// Create generates a key for owner, stores its hash, and returns the key
// (to be shown once) with its record.
func (s *RedisStore) Create(ctx context.Context, owner string, scopes []string, ttl time.Duration, description string) (string, *Record, error) {
	owner = strings.TrimSpace(owner)
	if owner == "" {
		return "", nil, errors.New("--owner is required")
	}
	key, id, err := Generate()
	if err != nil {
		return "", nil, err
	}
	now := s.now().UTC().Truncate(time.Second)
	rec := &Record{ID: id, Hash: Hash(key), Owner: owner, Scopes: scopes, Description: description, CreatedAt: now}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl)
	}
	if err := rec.Validate(); err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(storedRecord{ID: rec.ID, Hash: rec.Hash, Owner: rec.Owner, Scopes: rec.Scopes, Description: rec.Description, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt})
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	created, err := s.client.HSetNX(ctx, s.recordKey(id), "record", b).Result()
	if err != nil {
		return "", nil, fmt.Errorf("api key store: %w", err)
	}
	if !created {
		return "", nil, errors.New("api key id collision; try again")
	}
	if err := s.client.SAdd(ctx, s.idsKey, id).Err(); err != nil {
		return "", nil, fmt.Errorf("api key store: %w", err)
	}
	// Replicas that looked this id up before may remember "not found".
	s.forget(id)
	if err := s.client.Publish(ctx, s.channel, id).Err(); err != nil {
		s.opts.Logger.Warn("api key created; notifying replicas failed (they will see it within negative_ttl)", "id", id, "error", err)
	}
	return key, rec, nil
}

// Revoke marks the key with id as revoked and tells every replica.
func (s *RedisStore) Revoke(ctx context.Context, id string) (*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	k := s.recordKey(id)
	n, err := s.client.Exists(ctx, k).Result()
	if err != nil {
		return nil, fmt.Errorf("api key store: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("api key %s: %w", id, ErrNotFound)
	}
	now := s.now().UTC()
	// HSETNX keeps the first revocation time; the counter and the message
	// make every replica drop its copy.
	if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, k, "revoked_at", now.Format(time.RFC3339Nano))
		p.Incr(ctx, s.revKey)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("api key store: %w", err)
	}
	s.forget(id)
	if err := s.client.Publish(ctx, s.channel, id).Err(); err != nil {
		s.opts.Logger.Warn("api key revoked; pub/sub notification failed, replicas will see it on their next poll", "id", id, "error", err)
	}
	fields, err := s.client.HGetAll(ctx, k).Result()
	if err != nil {
		return nil, fmt.Errorf("api key store: %w", err)
	}
	return decodeRecord(id, fields)
}

// List returns every record, oldest first.
func (s *RedisStore) List(ctx context.Context) ([]*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	ids, err := s.client.SMembers(ctx, s.idsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("api key store: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.recordKey(id))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("api key store: %w", err)
	}
	out := make([]*Record, 0, len(ids))
	for i, id := range ids {
		rec, err := decodeRecord(id, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Ready is closed once Watch's subscription is confirmed.
func (s *RedisStore) Ready() <-chan struct{} { return s.ready }

// Watch receives created and revoked ids from every replica and polls the
// revocation counter, until ctx ends.
func (s *RedisStore) Watch(ctx context.Context) {
	ps := s.client.Subscribe(ctx, s.channel)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(time.Second))
	t := time.NewTicker(s.opts.Poll)
	defer t.Stop()
	s.poll(ctx)
	subscribed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.poll(ctx)
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
					// Messages may have been lost while disconnected:
					// distrust the copies until the counter is checked.
					s.opts.Logger.Warn("api key store: resubscribed; checking the revocation counter")
					s.failEpoch.Add(1)
					s.poll(ctx)
				}
				subscribed = true
				s.readyOnce.Do(func() { close(s.ready) })
			case *redis.Message:
				if !validID(msg.Payload) {
					s.opts.Logger.Warn("api key store: ignoring malformed message", "channel", s.channel)
					continue
				}
				s.forget(msg.Payload)
			}
		}
	}
}

// poll drops every cached record when the revocation counter moved. It
// goes through the breaker, so while Redis is down it costs nothing, and it
// is the probe that finds Redis back when no lookup does.
func (s *RedisStore) poll(ctx context.Context) {
	if !s.breaker.Allow() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	epoch := s.failEpoch.Load()
	suspect := epoch != s.reconciled.Load()
	n, present, err := counterValue(s.client.Get(ctx, s.revKey))
	if !s.done(ctx, err) {
		return
	}
	s.observe(n, present, epoch, suspect)
}

// validID reports whether id has the shape of a key id (16 lowercase
// base32 characters).
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
