package engine

// The continuous-batching scheduler: one goroutine owns the model and runs it step by step for
// every admitted sequence at once.
//
// Each step:
//
//  1. drops cancelled sequences (waiting or running): their pages go back to the pool at once;
//  2. admits waiting sequences first come, first served while fewer than MaxRunning run and
//     the KV pool has the blocks for the sequence's tokens plus one (reserved at admission, so
//     a prefill never runs out of pages; only decodes grow);
//  3. builds one Model.Step: every running sequence with one token to feed (decodes), then
//     prefill chunks of the others in admission order, within the step's token budget
//     (Model.Opts.MaxTokens) and the workspace's bound on prefill keys;
//  4. gives each decode the page its next token needs; when the pool is empty it preempts the
//     NEWEST running sequence: its pages are freed and it goes back to the head of the queue
//     with its tokens so far (prompt + generated) as its prompt, to be recomputed when pages
//     free up (vLLM's "recompute" preemption). Its sampler, detokeniser and stop matcher keep
//     their state, so its client only sees a pause, and a seeded run draws the same tokens;
//  5. runs the step, samples every sequence that got its last-token logits with its own
//     sampling.Sampler, and streams the tokens to the request's Stream. A finished sequence
//     frees its pages at once.
//
// A sequence's state is uniform across prefill, decode and resume: `toks` holds prompt and
// generated tokens, `kv.Len` how many of them are in the cache; the step feeds toks[kv.Len:].

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepgo/deepgo/go/model/deepseek"
	"github.com/deepgo/deepgo/go/sampling"
	"github.com/deepgo/deepgo/go/tokenizer"
)

// FinishAbort ends a sequence the server dropped: shutdown past its deadline, an engine error.
const FinishAbort sampling.FinishReason = "abort"

// Scheduler errors Submit returns.
var (
	ErrQueueFull    = errors.New("too many requests waiting: try again later")
	ErrShuttingDown = errors.New("the server is shutting down")
	ErrEmptyPrompt  = errors.New("empty prompt")
)

// SchedulerConfig bounds the scheduler.
type SchedulerConfig struct {
	// MaxRunning is the number of sequences decoded together (0 or more than the model was
	// loaded for: Model.Opts.MaxBatch).
	MaxRunning int
	// MaxQueue is the number of sequences that may wait for admission (0: 256). Submit fails
	// with ErrQueueFull beyond it.
	MaxQueue int
	// StepTokens is the token budget of one step (0 or more than the model's: Model.Opts.MaxTokens).
	StepTokens int
	// BeforeStep, when set, runs on the scheduler goroutine before every step (instrumentation,
	// and tests that need the loop held at a known point).
	BeforeStep func()
	// LogitsHook, when set (tests), sees every sequence's last-token logits before its
	// constraint and sampler do, and may change them (e.g. force a token id to make outputs
	// exact). It runs on the sampling goroutines, concurrently for different sequences.
	LogitsHook func(seq LogitsInfo, logits []float32)
}

// LogitsInfo identifies the sequence a LogitsHook call is for.
type LogitsInfo struct {
	Prompt []int32 // the request's prompt for this choice
	Choice int     // the choice index within the request
	Step   int     // how many tokens the sequence has generated so far (0 for the first)
}

// Constraint restricts what one sequence may generate (structured output). Mask runs on the
// sequence's logits before sampling (after SchedulerConfig.LogitsHook); Accept runs with the
// drawn token and its decoded text (empty for a stop token, or when the detokeniser holds
// bytes back) after. Calls for one sequence never overlap. A constraint that cannot go on
// should stop masking rather than fail: the sequence finishes as usual.
type Constraint interface {
	Mask(logits []float32)
	Accept(id int, text string)
}

// GenRequest is one generation request: every prompt is continued N times, each a sequence
// with its own sampler; choice i*N+j is prompt i's j-th continuation.
type GenRequest struct {
	Prompts [][]int32
	N       int // 0 means 1
	Params  sampling.Params
	// SeedPerChoice: with Params.HasSeed, choice k draws with seed Params.Seed+k (so n > 1 gives
	// n different continuations that are still reproducible).
	SeedPerChoice bool
	// Constraint, when set, makes the constraint of choice k (nil: unconstrained).
	Constraint func(choice int) Constraint
}

// Event is one step of one choice: a token, its finish, or both.
type Event struct {
	Index    int  // choice
	HasToken bool // Token is set
	Token    Token
	// Finish is set on the last event of a choice ("stop", "length" or FinishAbort); Err says
	// why an aborted choice was aborted.
	Finish sampling.FinishReason
	Err    error
	At     time.Time
	// Generated counts the choice's tokens so far, Preempted how often it was preempted.
	Generated, Preempted int
}

// Stream receives the events of one GenRequest, in order per choice.
type Stream struct {
	ctx          context.Context
	Submitted    time.Time
	PromptTokens []int // per prompt
	Choices      int

	mu       sync.Mutex
	evs      []Event
	head     int
	finished int
	notify   chan struct{}
}

// Recv returns the next event; io.EOF once every choice has finished, or ctx's error.
func (s *Stream) Recv(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if s.head < len(s.evs) {
			ev := s.evs[s.head]
			s.evs[s.head] = Event{}
			s.head++
			if s.head == len(s.evs) {
				s.evs, s.head = s.evs[:0], 0
			}
			s.mu.Unlock()
			return ev, nil
		}
		done := s.finished == s.Choices
		s.mu.Unlock()
		if done {
			return Event{}, io.EOF
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

func (s *Stream) push(ev Event) {
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	if ev.Finish != sampling.FinishNone {
		s.finished++
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// SchedulerStats is a snapshot, safe to read from any goroutine.
type SchedulerStats struct {
	Waiting, Running        int
	FreeBlocks, TotalBlocks int
	Steps, Preemptions      int64
	// DevicePicks counts tokens chosen by the device's argmax (greedy sequences: only the id
	// came back, not the logits row).
	DevicePicks int64
}

// KVUsage is the fraction of KV blocks in use, 0..1.
func (s SchedulerStats) KVUsage() float64 {
	if s.TotalBlocks == 0 {
		return 0
	}
	return float64(s.TotalBlocks-s.FreeBlocks) / float64(s.TotalBlocks)
}

// Scheduler runs many requests on one Engine with continuous batching. Create it with
// NewScheduler; the Engine must not be used by anyone else while the scheduler runs.
type Scheduler struct {
	e          *Engine
	cfg        SchedulerConfig
	maxKeys    int
	eos        []int
	wake       chan struct{}
	stop       chan struct{}
	loopDone   chan struct{}
	abortAll   atomic.Bool
	mu         sync.Mutex
	waiting    []*seqState // guarded by mu
	closed     bool        // guarded by mu
	running    []*seqState // owned by the loop, in admission order
	stopOnce   sync.Once
	stepHook   atomic.Pointer[func()] // tests: called by the loop before each step
	statWait   atomic.Int64
	statRun    atomic.Int64
	statFree   atomic.Int64
	statSteps  atomic.Int64
	statPreemp atomic.Int64
	statPicks  atomic.Int64
	inflight   atomic.Int64 // sequences submitted and not yet finished
}

type seqState struct {
	st        *Stream
	index     int
	params    sampling.Params
	hist      []int   // prompt + generated, for the sampler
	toks      []int32 // the same, for the model
	generated int
	kv        deepseek.Sequence
	smp       *sampling.Sampler
	dec       *tokenizer.StreamDecoder
	stops     *sampling.StopMatcher
	preempted int
	prompt    []int32    // the original prompt (LogitsHook)
	cons      Constraint // nil: unconstrained
}

// NewScheduler starts the scheduler's goroutine over e.
func NewScheduler(e *Engine, cfg SchedulerConfig) *Scheduler {
	o := e.Model.Opts
	if cfg.MaxRunning <= 0 || cfg.MaxRunning > o.MaxBatch {
		cfg.MaxRunning = o.MaxBatch
	}
	if cfg.StepTokens <= 0 || cfg.StepTokens > o.MaxTokens {
		cfg.StepTokens = o.MaxTokens
	}
	cfg.MaxRunning = min(cfg.MaxRunning, cfg.StepTokens)
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 256
	}
	s := &Scheduler{e: e, cfg: cfg, eos: e.eosIDs(), wake: make(chan struct{}, 1), stop: make(chan struct{}),
		loopDone: make(chan struct{}),
		// The model's workspace holds max(MaxContext, MaxTokens) gathered keys for the
		// prefill requests of a step (deepseek's workspace.maxKeys).
		maxKeys: max(o.MaxContext, o.MaxTokens)}
	s.statFree.Store(int64(e.Model.KV.FreeBlocks()))
	go s.loop()
	return s
}

// Config returns the bounds in use.
func (s *Scheduler) Config() SchedulerConfig { return s.cfg }

// Engine returns the engine the scheduler runs.
func (s *Scheduler) Engine() *Engine { return s.e }

// Stats returns a snapshot of the queue and the cache.
func (s *Scheduler) Stats() SchedulerStats {
	return SchedulerStats{Waiting: int(s.statWait.Load()), Running: int(s.statRun.Load()),
		FreeBlocks: int(s.statFree.Load()), TotalBlocks: s.e.Model.KV.NumBlocks,
		Steps: s.statSteps.Load(), Preemptions: s.statPreemp.Load(), DevicePicks: s.statPicks.Load()}
}

// MaxContext is the context length the model was loaded for.
func (s *Scheduler) MaxContext() int { return s.e.Model.Opts.MaxContext }

// Submit validates a request and queues its sequences. Cancelling ctx drops them (and frees
// their pages) within one step. Errors: sampling parameter errors, ErrEmptyPrompt, a token
// outside the vocabulary, *PromptTooLongError, ErrQueueFull, ErrShuttingDown.
func (s *Scheduler) Submit(ctx context.Context, r GenRequest) (*Stream, error) {
	if r.N <= 0 {
		r.N = 1
	}
	p := r.Params
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(r.Prompts) == 0 {
		return nil, ErrEmptyPrompt
	}
	ctxLen := s.e.Model.Opts.MaxContext
	for _, ids := range r.Prompts {
		if len(ids) == 0 {
			return nil, ErrEmptyPrompt
		}
		if err := s.e.checkPrompt(ids, max(1, p.MaxTokens)); err != nil {
			return nil, err
		}
	}
	if len(p.EOSIDs) == 0 {
		p.EOSIDs = s.eos
	}
	for _, id := range append(append([]int(nil), p.StopIDs...), p.EOSIDs...) {
		if id >= s.e.Cfg.VocabSize {
			return nil, fmt.Errorf("stop token id %d is outside the vocabulary [0, %d)", id, s.e.Cfg.VocabSize)
		}
	}
	st := &Stream{ctx: ctx, Submitted: time.Now(), Choices: len(r.Prompts) * r.N, notify: make(chan struct{}, 1)}
	seqs := make([]*seqState, 0, st.Choices)
	for i, ids := range r.Prompts {
		st.PromptTokens = append(st.PromptTokens, len(ids))
		for j := 0; j < r.N; j++ {
			q := &seqState{st: st, index: i*r.N + j, params: p, prompt: ids}
			if r.Constraint != nil {
				q.cons = r.Constraint(q.index)
			}
			if q.params.MaxTokens <= 0 || q.params.MaxTokens > ctxLen-len(ids) {
				q.params.MaxTokens = ctxLen - len(ids)
			}
			if r.SeedPerChoice && p.HasSeed {
				q.params.Seed = p.Seed + uint64(q.index)
			}
			q.toks = append(make([]int32, 0, len(ids)+q.params.MaxTokens), ids...)
			q.hist = make([]int, len(ids), len(ids)+q.params.MaxTokens)
			for k, id := range ids {
				q.hist[k] = int(id)
			}
			seqs = append(seqs, q)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrShuttingDown
	}
	if len(s.waiting)+len(seqs) > s.cfg.MaxQueue {
		s.mu.Unlock()
		return nil, ErrQueueFull
	}
	s.waiting = append(s.waiting, seqs...)
	s.inflight.Add(int64(len(seqs)))
	s.statWait.Store(int64(len(s.waiting)))
	s.mu.Unlock()
	s.poke()
	return st, nil
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Shutdown stops admitting new requests (Submit returns ErrShuttingDown), lets the accepted
// ones finish until ctx is done, then aborts the rest (FinishAbort) and stops the goroutine.
// It returns ctx's error when requests had to be aborted.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.poke()
	var err error
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
wait:
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-s.loopDone:
			break wait
		case <-t.C:
		}
	}
	s.abortAll.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.loopDone
	return err
}

// Close aborts everything and stops the scheduler (it does not close the Engine).
func (s *Scheduler) Close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
}

// Closed reports whether Shutdown has begun.
func (s *Scheduler) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Scheduler) loop() {
	defer close(s.loopDone)
	defer s.abortEverything(ErrShuttingDown)
	for {
		if s.abortAll.Load() {
			return
		}
		s.mu.Lock()
		idle := len(s.waiting) == 0 && len(s.running) == 0
		s.mu.Unlock()
		if idle {
			select {
			case <-s.wake:
			case <-s.stop:
				return
			}
			continue
		}
		if h := s.stepHook.Load(); h != nil {
			(*h)()
		}
		s.step()
	}
}

// abortEverything ends every sequence left, waiting or running.
func (s *Scheduler) abortEverything(why error) {
	s.mu.Lock()
	w := s.waiting
	s.waiting = nil
	s.closed = true
	s.statWait.Store(0)
	s.mu.Unlock()
	for _, q := range w {
		s.finish(q, FinishAbort, why)
	}
	for _, q := range s.running {
		s.finish(q, FinishAbort, why)
	}
	s.running = nil
	s.publish()
}

func (s *Scheduler) publish() {
	s.statRun.Store(int64(len(s.running)))
	s.statFree.Store(int64(s.e.Model.KV.FreeBlocks()))
}

// finish releases a sequence's pages and sends its last event (with no token).
func (s *Scheduler) finish(q *seqState, why sampling.FinishReason, err error) {
	s.e.Model.KV.Release(&q.kv)
	q.smp = nil
	s.inflight.Add(-1)
	q.st.push(Event{Index: q.index, Finish: why, Err: err, At: time.Now(), Generated: q.generated,
		Preempted: q.preempted})
}

func (s *Scheduler) step() {
	if s.cfg.BeforeStep != nil {
		s.cfg.BeforeStep()
	}
	kv := s.e.Model.KV
	// 1. Cancelled sequences leave, waiting or running.
	s.mu.Lock()
	keep := s.waiting[:0]
	var dropped []*seqState
	for _, q := range s.waiting {
		if q.st.ctx.Err() != nil {
			dropped = append(dropped, q)
		} else {
			keep = append(keep, q)
		}
	}
	clear(s.waiting[len(keep):])
	s.waiting = keep
	s.mu.Unlock()
	for _, q := range dropped {
		s.finish(q, FinishAbort, q.st.ctx.Err())
	}
	run := s.running[:0]
	for _, q := range s.running {
		if err := q.st.ctx.Err(); err != nil {
			s.finish(q, FinishAbort, err)
		} else {
			run = append(run, q)
		}
	}
	clear(s.running[len(run):])
	s.running = run

	// 2. Admission, first come first served, by pages.
	s.mu.Lock()
	for len(s.waiting) > 0 && len(s.running) < s.cfg.MaxRunning {
		q := s.waiting[0]
		if kv.BlocksFor(len(q.toks)+1)-len(q.kv.Blocks) > kv.FreeBlocks() {
			break
		}
		if err := kv.Reserve(&q.kv, len(q.toks)+1); err != nil {
			break
		}
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		if q.smp == nil {
			q.smp = sampling.New(q.params, s.e.Cfg.VocabSize)
			if s.e.Tok != nil {
				q.dec = s.e.Tok.NewStreamDecoder(true)
				if len(q.params.StopStrings) > 0 {
					q.stops = sampling.NewStopMatcher(q.params.StopStrings)
				}
			}
		}
		s.running = append(s.running, q)
	}
	s.statWait.Store(int64(len(s.waiting)))
	s.mu.Unlock()
	s.publish()
	if len(s.running) == 0 {
		return
	}

	// 3-4. The step: decodes (with their next page), then prefill chunks.
	var reqs []deepseek.Request
	var owners []*seqState
	budget := s.cfg.StepTokens
	var preempted []*seqState
	for i := 0; i < len(s.running) && budget > 0; i++ {
		q := s.running[i]
		if len(q.toks)-q.kv.Len != 1 {
			continue
		}
		for kv.Reserve(&q.kv, q.kv.Len+1) != nil {
			// Preempt the newest running sequence (perhaps q itself).
			v := s.running[len(s.running)-1]
			s.running = s.running[:len(s.running)-1]
			kv.Release(&v.kv)
			v.preempted++
			preempted = append(preempted, v)
			if v == q {
				break
			}
		}
		if i >= len(s.running) {
			break
		}
		reqs = append(reqs, deepseek.Request{Seq: &q.kv, Tokens: q.toks[q.kv.Len:], Logits: deepseek.LogitsLast,
			Argmax: s.devicePick(q)})
		owners = append(owners, q)
		budget--
	}
	if len(preempted) > 0 {
		s.statPreemp.Add(int64(len(preempted)))
		s.mu.Lock()
		// Oldest preempted first at the head of the queue.
		head := make([]*seqState, 0, len(preempted)+len(s.waiting))
		for i := len(preempted) - 1; i >= 0; i-- {
			head = append(head, preempted[i])
		}
		s.waiting = append(head, s.waiting...)
		s.statWait.Store(int64(len(s.waiting)))
		s.mu.Unlock()
	}
	keys := 0
	for _, q := range s.running {
		pending := len(q.toks) - q.kv.Len
		if pending <= 1 || budget <= 0 {
			continue
		}
		n := min(pending, budget)
		if n > 1 && keys+q.kv.Len+n > s.maxKeys {
			n = s.maxKeys - keys - q.kv.Len
			if n < 2 {
				continue
			}
		}
		want := deepseek.LogitsNone
		if n == pending {
			want = deepseek.LogitsLast
		}
		reqs = append(reqs, deepseek.Request{Seq: &q.kv, Tokens: q.toks[q.kv.Len : q.kv.Len+n], Logits: want,
			Argmax: want == deepseek.LogitsLast && s.devicePick(q)})
		owners = append(owners, q)
		budget -= n
		keys += q.kv.Len + n
	}
	if len(reqs) == 0 {
		s.publish()
		return
	}

	// 5. Run, sample, stream.
	out, ids, err := s.e.Model.StepIDs(reqs)
	s.statSteps.Add(1)
	now := time.Now()
	if err != nil {
		err = fmt.Errorf("engine step: %w", err)
		failed := map[*seqState]bool{}
		for _, q := range owners {
			failed[q] = true
			s.finish(q, FinishAbort, err)
		}
		s.dropRunning(failed)
		s.publish()
		return
	}
	// Sampling is independent per sequence: draw in parallel, then stream in order.
	var todo []int
	for k := range owners {
		if reqs[k].Logits == deepseek.LogitsLast {
			todo = append(todo, k)
		}
	}
	drawn := make([]drawResult, len(owners))
	parallelFor(len(todo), func(i int) {
		k := todo[i]
		q := owners[k]
		if ids[k] >= 0 { /* picked on the device: Sample's greedy rule, only the id came back */
			drawn[k].res = q.smp.Picked(int(ids[k]))
			s.statPicks.Add(1)
			return
		}
		if h := s.cfg.LogitsHook; h != nil {
			h(LogitsInfo{Prompt: q.prompt, Choice: q.index, Step: q.generated}, out[k])
		}
		if q.cons != nil {
			q.cons.Mask(out[k])
		}
		drawn[k].res, drawn[k].err = q.smp.Sample(out[k], q.hist, q.generated)
	})
	var done map[*seqState]bool
	for _, k := range todo {
		q := owners[k]
		if fin := s.emit(q, drawn[k], now); fin {
			if done == nil {
				done = map[*seqState]bool{}
			}
			done[q] = true
		}
	}
	if done != nil {
		s.dropRunning(done)
	}
	s.publish()
}

// devicePick says whether q's next token may be the device's argmax (Request.Argmax): greedy
// with nothing that needs the logits on the host at this step (penalties, logprobs, a
// constraint's mask, MinTokens still suppressing EOS, the tests' LogitsHook).
func (s *Scheduler) devicePick(q *seqState) bool {
	return q.smp.ArgmaxOnly() && q.cons == nil && s.cfg.LogitsHook == nil && q.generated >= q.params.MinTokens
}

type drawResult struct {
	res sampling.Result
	err error
}

// parallelFor runs f(0..n-1) on up to GOMAXPROCS goroutines.
func parallelFor(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (s *Scheduler) dropRunning(gone map[*seqState]bool) {
	run := s.running[:0]
	for _, q := range s.running {
		if !gone[q] {
			run = append(run, q)
		}
	}
	clear(s.running[len(run):])
	s.running = run
}

// emit streams q's drawn token; it reports whether q finished (its pages are then released).
func (s *Scheduler) emit(q *seqState, d drawResult, now time.Time) bool {
	res, err := d.res, d.err
	if err != nil {
		s.finish(q, FinishAbort, fmt.Errorf("sampling: %w", err))
		return true
	}
	if len(res.Top) > 0 {
		res.Top = append([]sampling.TokenLogprob(nil), res.Top...)
	}
	q.generated++
	q.hist = append(q.hist, res.ID)
	q.toks = append(q.toks, int32(res.ID))
	finish := q.smp.Finish(res.ID, q.generated)
	tok := Token{ID: res.ID, Result: res}
	tok.Text, finish = emitText(q.dec, q.stops, res.ID, finish == sampling.FinishStop, finish)
	if q.cons != nil {
		q.cons.Accept(res.ID, tok.Text)
	}
	ev := Event{Index: q.index, HasToken: true, Token: tok, Finish: finish, At: now, Generated: q.generated,
		Preempted: q.preempted}
	if finish != sampling.FinishNone {
		s.e.Model.KV.Release(&q.kv)
		q.smp = nil
		s.inflight.Add(-1)
	}
	q.st.push(ev)
	return finish != sampling.FinishNone
}
