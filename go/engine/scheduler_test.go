package engine

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/sampling"
)

func fixtureModel(name string) string {
	return filepath.Join("..", "..", "tests", "fixtures", "models", name)
}

func openFixture(t *testing.T, batch, ctx int, kv CacheConfig) *Engine {
	t.Helper()
	e, err := OpenWithCache(Config{ModelDir: fixtureModel("plainq-f32-sharded"), Backend: "cpu", Threads: 2,
		MaxBatch: batch, MaxContext: ctx, MaxTokens: 64}, kv)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e
}

func greedy(max int) sampling.Params {
	p := sampling.DefaultParams()
	p.Temperature, p.MaxTokens, p.IgnoreEOS = 0, max, true
	return p
}

// collect reads a stream to its end: the token ids and the finish of each choice.
func collect(t *testing.T, st *Stream) ([][]int, []sampling.FinishReason, []error) {
	ids := make([][]int, st.Choices)
	fin := make([]sampling.FinishReason, st.Choices)
	errs := make([]error, st.Choices)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ev, err := st.Recv(ctx)
		if err == io.EOF {
			return ids, fin, errs
		}
		if err != nil {
			t.Errorf("recv: %v", err)
			return ids, fin, errs
		}
		if ev.HasToken {
			ids[ev.Index] = append(ids[ev.Index], ev.Token.ID)
		}
		if ev.Finish != "" {
			fin[ev.Index], errs[ev.Index] = ev.Finish, ev.Err
		}
	}
}

func generateIDs(t *testing.T, e *Engine, prompt []int32, p sampling.Params) []int {
	var got []int
	_, err := e.Generate(context.Background(), prompt, p, func(tk Token) bool { got = append(got, tk.ID); return true })
	require.NoError(t, err)
	return got
}

func randomPrompt(r *rand.Rand, n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(2 + r.IntN(254))
	}
	return p
}

func waitFree(t *testing.T, s *Scheduler) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := s.Stats()
		return st.FreeBlocks == st.TotalBlocks && st.Running == 0 && st.Waiting == 0
	}, 10*time.Second, 2*time.Millisecond, "pages not returned: %+v", s.Stats())
	require.Equal(t, s.e.Model.KV.NumBlocks, s.Stats().FreeBlocks)
}

func TestSchedulerGreedyMatchesGenerate(t *testing.T) {
	e := openFixture(t, 4, 64, CacheConfig{})
	r := rand.New(rand.NewPCG(1, 2))
	prompts := [][]int32{{0, 99, 129, 40, 125, 30, 213, 223, 197, 23, 12, 65}}
	for i := 0; i < 7; i++ {
		prompts = append(prompts, randomPrompt(r, 1+r.IntN(40)))
	}
	want := make([][]int, len(prompts))
	for i, p := range prompts {
		want[i] = generateIDs(t, e, p, greedy(10))
	}
	// The reference's own greedy continuation (transformers) for the first prompt.
	require.Equal(t, []int{11, 28, 28, 240, 221, 56, 56, 138}, want[0][:8])

	s := NewScheduler(e, SchedulerConfig{})
	defer s.Close()
	// One at a time, then all together (8 requests, 4 at once: prefill chunks beside decodes).
	st, err := s.Submit(context.Background(), GenRequest{Prompts: prompts[:1], Params: greedy(10)})
	require.NoError(t, err)
	ids, fin, _ := collect(t, st)
	require.Equal(t, want[0], ids[0])
	require.Equal(t, sampling.FinishLength, fin[0])

	var wg sync.WaitGroup
	got := make([][]int, len(prompts))
	for i := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.Submit(context.Background(), GenRequest{Prompts: prompts[i : i+1], Params: greedy(10)})
			if err != nil {
				t.Error(err)
				return
			}
			ids, _, _ := collect(t, st)
			got[i] = ids[0]
		}()
	}
	wg.Wait()
	for i := range prompts {
		require.Equal(t, want[i], got[i], "prompt %d", i)
	}
	waitFree(t, s)
	require.Greater(t, s.Stats().Steps, int64(0))
}

func TestSchedulerNChoicesAndSeeds(t *testing.T) {
	e := openFixture(t, 4, 64, CacheConfig{})
	p := sampling.DefaultParams()
	p.MaxTokens, p.IgnoreEOS, p.Seed, p.HasSeed = 6, true, 7, true
	prompt := []int32{5, 6, 7, 8}
	var want [][]int
	for k := range 6 {
		q := p
		q.Seed = 7 + uint64(k)
		want = append(want, generateIDs(t, e, prompt, q))
	}
	s := NewScheduler(e, SchedulerConfig{})
	defer s.Close()
	st, err := s.Submit(context.Background(), GenRequest{Prompts: [][]int32{prompt, prompt}, N: 3, Params: p,
		SeedPerChoice: true})
	require.NoError(t, err)
	require.Equal(t, 6, st.Choices)
	ids, fin, _ := collect(t, st)
	for k := range 6 {
		require.Len(t, ids[k], 6)
		require.Equal(t, sampling.FinishLength, fin[k])
		// choice k uses seed 7+k: the same as Generate with that seed.
		require.Equal(t, want[k], ids[k], "choice %d", k)
	}
	waitFree(t, s)
}

func TestSchedulerCancelFreesPages(t *testing.T) {
	e := openFixture(t, 2, 64, CacheConfig{BlockSize: 16})
	// The loop is held after the first token until the client has cancelled, so the sequences
	// are still running when the cancellation arrives (the tiny model would otherwise finish first).
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	s := NewScheduler(e, SchedulerConfig{BeforeStep: func() {
		if steps++; steps > 2 {
			<-ctx.Done()
		}
	}})
	defer s.Close()
	st, err := s.Submit(ctx, GenRequest{Prompts: [][]int32{{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
		18, 19, 20}}, N: 2, Params: greedy(40)})
	require.NoError(t, err)
	ev, err := st.Recv(context.Background())
	require.NoError(t, err)
	require.True(t, ev.HasToken)
	require.Eventually(t, func() bool { return s.Stats().FreeBlocks < s.Stats().TotalBlocks }, time.Second,
		time.Millisecond)
	cancel()
	aborted := 0
	for {
		ev, err := st.Recv(context.Background())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if ev.Finish != "" {
			require.Equal(t, FinishAbort, ev.Finish)
			require.ErrorIs(t, ev.Err, context.Canceled)
			aborted++
		}
	}
	require.Equal(t, 2, aborted)
	waitFree(t, s)
}

func TestSchedulerPreemptsNewest(t *testing.T) {
	// 4 blocks of 16 tokens: one context of 64. Four sequences of 10 + 30 tokens need 12 blocks.
	e := openFixture(t, 4, 64, CacheConfig{Blocks: 4, BlockSize: 16})
	r := rand.New(rand.NewPCG(3, 4))
	var prompts [][]int32
	var want [][]int
	for range 4 {
		p := randomPrompt(r, 10)
		prompts = append(prompts, p)
		want = append(want, generateIDs(t, e, p, greedy(30)))
	}
	s := NewScheduler(e, SchedulerConfig{})
	defer s.Close()
	var streams []*Stream
	for _, p := range prompts {
		st, err := s.Submit(context.Background(), GenRequest{Prompts: [][]int32{p}, Params: greedy(30)})
		require.NoError(t, err)
		streams = append(streams, st)
	}
	preempted := 0
	for i, st := range streams {
		ids, fin, errs := collect(t, st)
		require.NoError(t, errs[0])
		require.Equal(t, sampling.FinishLength, fin[0])
		require.Len(t, ids[0], 30)
		// Recompute after preemption runs the generated tokens through prefill instead of
		// decode: the same math in another order, so greedy ids agree on this fixture.
		require.Equal(t, want[i], ids[0], "sequence %d", i)
	}
	st := s.Stats()
	require.Greater(t, st.Preemptions, int64(0))
	preempted = int(st.Preemptions)
	t.Logf("%d preemptions over %d steps", preempted, st.Steps)
	waitFree(t, s)
}

func TestSchedulerManyConcurrent(t *testing.T) {
	e := openFixture(t, 4, 64, CacheConfig{})
	s := NewScheduler(e, SchedulerConfig{MaxQueue: 64})
	defer s.Close()
	r := rand.New(rand.NewPCG(5, 6))
	var wg sync.WaitGroup
	var mu sync.Mutex
	finished := 0
	for i := range 32 {
		p := randomPrompt(r, 1+r.IntN(30))
		wg.Add(1)
		go func() {
			defer wg.Done()
			params := greedy(1 + i%7)
			st, err := s.Submit(context.Background(), GenRequest{Prompts: [][]int32{p}, Params: params})
			if err != nil {
				t.Error(err)
				return
			}
			ids, fin, _ := collect(t, st)
			if len(ids[0]) != params.MaxTokens || fin[0] != sampling.FinishLength {
				t.Errorf("request %d: %d tokens, finish %q", i, len(ids[0]), fin[0])
			}
			mu.Lock()
			finished++
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, 32, finished)
	waitFree(t, s)
}

func TestSchedulerRejects(t *testing.T) {
	e := openFixture(t, 1, 64, CacheConfig{})
	s := NewScheduler(e, SchedulerConfig{MaxQueue: 2})
	defer s.Close()
	ctx := context.Background()
	_, err := s.Submit(ctx, GenRequest{Prompts: [][]int32{{1}}, N: 3, Params: greedy(2)})
	require.ErrorIs(t, err, ErrQueueFull)
	_, err = s.Submit(ctx, GenRequest{Prompts: [][]int32{{}}, Params: greedy(2)})
	require.ErrorIs(t, err, ErrEmptyPrompt)
	_, err = s.Submit(ctx, GenRequest{Prompts: [][]int32{{300}}, Params: greedy(2)})
	require.ErrorContains(t, err, "outside the vocabulary")
	_, err = s.Submit(ctx, GenRequest{Prompts: [][]int32{make([]int32, 60)}, Params: greedy(10)})
	var tl *PromptTooLongError
	require.True(t, errors.As(err, &tl), "%v", err)
	bad := greedy(2)
	bad.TopP = 2
	_, err = s.Submit(ctx, GenRequest{Prompts: [][]int32{{1}}, Params: bad})
	require.ErrorContains(t, err, "top_p")
	bad = greedy(2)
	bad.StopIDs = []int{999}
	_, err = s.Submit(ctx, GenRequest{Prompts: [][]int32{{1}}, Params: bad})
	require.ErrorContains(t, err, "outside the vocabulary")

	// A blocked loop lets the queue fill: the third sequence is refused.
	gate := make(chan struct{})
	var once sync.Once
	s2 := NewScheduler(e, SchedulerConfig{MaxQueue: 2})
	hook := func() { once.Do(func() { <-gate }) }
	s2.stepHook.Store(&hook)
	st1, err := s2.Submit(ctx, GenRequest{Prompts: [][]int32{{5, 6}}, Params: greedy(2)})
	require.NoError(t, err)
	st2, err := s2.Submit(ctx, GenRequest{Prompts: [][]int32{{5, 6}}, Params: greedy(2)})
	require.NoError(t, err)
	_, err = s2.Submit(ctx, GenRequest{Prompts: [][]int32{{5, 6}}, Params: greedy(2)})
	require.ErrorIs(t, err, ErrQueueFull)
	close(gate)
	collect(t, st1)
	collect(t, st2)
	s2.Close()
}

func TestSchedulerShutdown(t *testing.T) {
	e := openFixture(t, 2, 64, CacheConfig{})
	s := NewScheduler(e, SchedulerConfig{})
	ctx := context.Background()
	short, err := s.Submit(ctx, GenRequest{Prompts: [][]int32{{5, 6, 7}}, Params: greedy(3)})
	require.NoError(t, err)
	// A long one, slowed down so that it cannot finish before the deadline.
	slow := func() { time.Sleep(10 * time.Millisecond) }
	s.stepHook.Store(&slow)
	long, err := s.Submit(ctx, GenRequest{Prompts: [][]int32{{5, 6, 7}}, Params: greedy(60)})
	require.NoError(t, err)
	dl, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	err = s.Shutdown(dl)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = s.Submit(ctx, GenRequest{Prompts: [][]int32{{5}}, Params: greedy(3)})
	require.ErrorIs(t, err, ErrShuttingDown)
	ids, fin, _ := collect(t, short)
	require.Len(t, ids[0], 3)
	require.Equal(t, sampling.FinishLength, fin[0])
	ids, fin, errs := collect(t, long)
	require.Less(t, len(ids[0]), 60)
	require.Equal(t, FinishAbort, fin[0])
	require.ErrorIs(t, errs[0], ErrShuttingDown)
	require.Equal(t, s.Stats().TotalBlocks, s.Stats().FreeBlocks)
}

// Greedy sequences take the device's argmax (only ids come back); the tokens must be those the
// host sampler picks from the downloaded logits (a LogitsHook forces that path), also in a
// batch that mixes them with sampled sequences and with MinTokens (host rows for the first
// tokens, device rows after).
func TestSchedulerDevicePick(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	prompts := [][]int32{randomPrompt(r, 5), randomPrompt(r, 11), randomPrompt(r, 3)}
	params := func(k int) sampling.Params {
		p := greedy(12)
		switch k {
		case 1:
			p.Temperature, p.TopK, p.HasSeed, p.Seed = 0.8, 20, true, 42
		case 2:
			p.MinTokens = 4
		}
		return p
	}
	run := func(hook bool) ([][]int, SchedulerStats) {
		e := openFixture(t, 4, 64, CacheConfig{})
		cfg := SchedulerConfig{}
		if hook {
			cfg.LogitsHook = func(LogitsInfo, []float32) {}
		}
		s := NewScheduler(e, cfg)
		defer s.Close()
		var sts []*Stream
		for k, pr := range prompts {
			st, err := s.Submit(context.Background(), GenRequest{Prompts: [][]int32{pr}, Params: params(k)})
			require.NoError(t, err)
			sts = append(sts, st)
		}
		var out [][]int
		for _, st := range sts {
			ids, fin, errs := collect(t, st)
			require.NoError(t, errs[0])
			require.Equal(t, sampling.FinishLength, fin[0])
			out = append(out, ids[0])
		}
		return out, s.Stats()
	}
	host, hs := run(true)
	dev, ds := run(false)
	require.Equal(t, host, dev)
	require.Zero(t, hs.DevicePicks)
	/* sequence 0: 12 picks; sequence 2: 12 - 4 (MinTokens); sequence 1 samples */
	require.EqualValues(t, 12+8, ds.DevicePicks)
}
