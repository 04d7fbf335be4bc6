package sampling

import (
	"github.com/stretchr/testify/require"

	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// ---------- reference implementation (independent of the radix select) ----------

// refDist is a straightforward implementation of steps 5-10 on already
// penalised logits: sort by (logit desc, id asc), softmax in float64, cut.
func refDist(logits []float32, p Params) []float64 {
	n := len(logits)
	ids := make([]int, 0, n)
	for i, x := range logits {
		if !math.IsInf(float64(x), -1) {
			ids = append(ids, i)
		}
	}
	sort.SliceStable(ids, func(a, b int) bool { return logits[ids[a]] > logits[ids[b]] })
	if p.TopK > 0 && p.TopK < len(ids) {
		ids = ids[:p.TopK]
	}
	m := float64(logits[ids[0]])
	e := make([]float64, len(ids))
	z := 0.0
	for i, id := range ids {
		e[i] = math.Exp((float64(logits[id]) - m) / float64(p.Temperature))
		z += e[i]
	}
	if p.TopP < 1 {
		c := 0.0
		for i := range ids {
			c += e[i]
			if c >= float64(p.TopP)*z {
				ids, e = ids[:i+1], e[:i+1]
				break
			}
		}
	}
	out := make([]float64, n)
	z = 0
	for i, id := range ids {
		if p.MinP > 0 && e[i] < float64(p.MinP) {
			continue
		}
		out[id] = e[i]
		z += e[i]
	}
	for i := range out {
		out[i] /= z
	}
	return out
}

// chi2Crit001 are the chi-square critical values at p = 0.001, df = 1..30.
var chi2Crit001 = []float64{
	10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588,
	31.264, 32.909, 34.528, 36.123, 37.697, 39.252, 40.790, 42.312, 43.820, 45.315,
	46.797, 48.268, 49.728, 51.179, 52.620, 54.052, 55.476, 56.892, 58.301, 59.703,
}

func chi2Critical(df int) float64 {
	if df <= len(chi2Crit001) {
		return chi2Crit001[df-1]
	}
	// Wilson-Hilferty, z_{0.999} = 3.090232.
	k := float64(df)
	a := 2 / (9 * k)
	return k * math.Pow(1-a+3.090232*math.Sqrt(a), 3)
}

// requireChiSquare checks that counts follow probs: tokens with probability 0
// must never appear; bins with expected count < 5 are pooled.
func requireChiSquare(t *testing.T, counts []int, probs []float64) {
	t.Helper()
	total := 0
	for _, c := range counts {
		total += c
	}
	stat, bins := 0.0, 0
	poolE, poolO := 0.0, 0
	for i, pr := range probs {
		if pr == 0 {
			require.Equal(t, 0, counts[i], "token %d has probability 0 but was drawn", i)
			continue
		}
		exp := pr * float64(total)
		if exp < 5 {
			poolE += exp
			poolO += counts[i]
			continue
		}
		d := float64(counts[i]) - exp
		stat += d * d / exp
		bins++
	}
	if poolE > 0 {
		d := float64(poolO) - poolE
		stat += d * d / poolE
		bins++
	}
	if bins < 2 {
		return // a single outcome: nothing to test beyond the zero bins
	}
	crit := chi2Critical(bins - 1)
	require.Less(t, stat, crit, "chi-square %.2f >= critical %.2f (df %d)", stat, crit, bins-1)
}

func drawCounts(t *testing.T, p Params, logits []float32, prev []int, generated, n int) []int {
	t.Helper()
	s := New(p, len(logits))
	counts := make([]int, len(logits))
	for range n {
		r, err := s.Sample(logits, prev, generated)
		require.NoError(t, err)
		counts[r.ID]++
	}
	return counts
}

func seeded(seed uint64) Params {
	p := DefaultParams()
	p.Seed, p.HasSeed = seed, true
	return p
}

const nDraws = 200_000

var small = []float32{1.0, 2.0, 0.5, -1, 3, 2.0, 0, -0.5, 1.5, -3}

// ---------- statistical tests ----------

func TestChiSquareFilters(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Params)
		kept int // expected size of the kept set
	}{
		{"temperature=1", func(p *Params) {}, 10},
		{"temperature=0.7", func(p *Params) { p.Temperature = 0.7 }, 10},
		{"temperature=2.5", func(p *Params) { p.Temperature = 2.5 }, 10},
		{"top_k=4", func(p *Params) { p.TopK = 4 }, 4},
		{"top_k=3 ties", func(p *Params) { p.TopK = 3 }, 3},    // ids 1 and 5 tie at 2.0
		{"top_k=2 tie cut", func(p *Params) { p.TopK = 2 }, 2}, // keeps 4 and 1, not 5
		{"top_p=0.8", func(p *Params) { p.TopP = 0.8 }, 0},
		{"top_p=0.5", func(p *Params) { p.TopP = 0.5 }, 0},
		{"min_p=0.1", func(p *Params) { p.MinP = 0.1 }, 0},
		{"min_p=0.2 temp=0.8", func(p *Params) { p.MinP = 0.2; p.Temperature = 0.8 }, 3},
		{"combined", func(p *Params) { p.Temperature = 1.3; p.TopK = 8; p.TopP = 0.9; p.MinP = 0.05 }, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := seeded(uint64(1000 + i))
			tc.mod(&p)
			require.NoError(t, p.Validate())
			want := refDist(small, p)
			if tc.kept > 0 {
				nz := 0
				for _, x := range want {
					if x > 0 {
						nz++
					}
				}
				require.Equal(t, tc.kept, nz)
			}
			requireChiSquare(t, drawCounts(t, p, small, nil, 0, nDraws), want)
		})
	}
	// The tie cut keeps the lower id.
	p := seeded(1)
	p.TopK = 2
	c := drawCounts(t, p, small, nil, 0, 10_000)
	require.Equal(t, 0, c[5])
	require.Greater(t, c[1], 0)
}

func TestChiSquareWithPenalties(t *testing.T) {
	p := seeded(77)
	p.Temperature = 0.9
	p.TopP = 0.95
	p.RepetitionPenalty = 1.3
	p.PresencePenalty = 0.4
	p.FrequencyPenalty = 0.3
	prev := []int{0, 1, 4, 4, 8, 4} // prompt 0,1,4; generated 4,8,4
	pen := append([]float32(nil), small...)
	// repetition over {0,1,4,8}; presence/frequency over generated {4:2, 8:1}
	pen[0] = 1.0 / 1.3
	pen[1] = 2.0 / 1.3
	pen[4] = 3.0/1.3 - (0.4 + 0.3*2)
	pen[8] = 1.5/1.3 - (0.4 + 0.3*1)
	want := refDist(pen, p)
	requireChiSquare(t, drawCounts(t, p, small, prev, 3, nDraws), want)
}

// A larger vocabulary with many ties and a wide range of logits, so that the
// radix select uses several buckets per pass and long equal-key runs.
func TestChiSquareLargeVocab(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(math.Round(rng.NormFloat64()*20) / 10) // 0.1 steps
	}
	logits[17] = float32(math.Inf(-1))
	for _, tc := range []struct {
		name string
		mod  func(*Params)
	}{
		{"plain", func(p *Params) {}},
		{"top_k=100", func(p *Params) { p.TopK = 100 }},
		{"top_p=0.7", func(p *Params) { p.TopP = 0.7 }},
		{"combined", func(p *Params) { p.Temperature = 0.8; p.TopK = 300; p.TopP = 0.9; p.MinP = 0.02 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := seeded(5)
			tc.mod(&p)
			requireChiSquare(t, drawCounts(t, p, logits, nil, 0, nDraws/2), refDist(logits, p))
		})
	}
}

// ---------- edge cases ----------

func TestTopK1IsArgmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := seeded(9)
	p.TopK = 1
	s := New(p, 50)
	logits := make([]float32, 50)
	for range 2000 {
		for i := range logits {
			logits[i] = float32(rng.IntN(8)) // many ties
		}
		r, err := s.Sample(logits, nil, 0)
		require.NoError(t, err)
		require.Equal(t, Argmax(logits), r.ID)
	}
}

func TestTinyTopPKeepsBest(t *testing.T) {
	p := seeded(10)
	p.TopP = 1e-6
	c := drawCounts(t, p, small, nil, 0, 20_000)
	require.Equal(t, 20_000, c[4])
	// Equal best logits: the tie goes to the lowest id.
	c = drawCounts(t, p, []float32{0, 5, 1, 5}, nil, 0, 1000)
	require.Equal(t, 1000, c[1])
}

func TestAllEqualUniform(t *testing.T) {
	logits := make([]float32, 12)
	for i := range logits {
		logits[i] = 0.25
	}
	uniform := func(n, k int) []float64 {
		out := make([]float64, n)
		for i := range k {
			out[i] = 1 / float64(k)
		}
		return out
	}
	requireChiSquare(t, drawCounts(t, seeded(11), logits, nil, 0, nDraws), uniform(12, 12))
	p := seeded(12)
	p.TopK = 5 // ties: the five lowest ids
	requireChiSquare(t, drawCounts(t, p, logits, nil, 0, nDraws), uniform(12, 5))
	p = seeded(13)
	p.TopP = 0.5 // 6 of 12 reach exactly 0.5
	requireChiSquare(t, drawCounts(t, p, logits, nil, 0, nDraws), uniform(12, 6))
	p = seeded(14)
	p.MinP = 1 // every token has p == p_max
	requireChiSquare(t, drawCounts(t, p, logits, nil, 0, nDraws), uniform(12, 12))
	p.Temperature = 0
	r, err := New(p, 12).Sample(logits, nil, 0)
	require.NoError(t, err)
	require.Equal(t, 0, r.ID)
}

func TestNegInfNeverDrawn(t *testing.T) {
	ninf := float32(math.Inf(-1))
	logits := []float32{ninf, 1, ninf, 1, 1, ninf, 1}
	want := []float64{0, 0.25, 0, 0.25, 0.25, 0, 0.25}
	for _, temp := range []float32{1, 1e6, math.MaxFloat32} {
		p := seeded(15)
		p.Temperature = temp
		requireChiSquare(t, drawCounts(t, p, logits, nil, 0, nDraws), want)
	}
	// Only one finite logit, even with extreme values elsewhere.
	logits = []float32{ninf, ninf, -math.MaxFloat32, ninf}
	c := drawCounts(t, seeded(16), logits, nil, 0, 100)
	require.Equal(t, 100, c[2])
	// Finite logits whose difference overflows have probability 0.
	logits = []float32{math.MaxFloat32, -math.MaxFloat32}
	c = drawCounts(t, seeded(17), logits, nil, 0, 100)
	require.Equal(t, 100, c[0])
	// All -Inf is an error, greedy or not.
	for _, temp := range []float32{0, 1} {
		p := seeded(1)
		p.Temperature = temp
		_, err := New(p, 3).Sample([]float32{ninf, ninf, ninf}, nil, 0)
		require.ErrorContains(t, err, "-Inf")
	}
}

func TestHugeTemperatureUniformOverKept(t *testing.T) {
	p := seeded(18)
	p.Temperature = 1e6
	p.TopK = 4
	want := make([]float64, len(small))
	for _, id := range []int{4, 1, 5, 8} { // top 4 by logit: 3, 2, 2, 1.5
		want[id] = 0.25
	}
	requireChiSquare(t, drawCounts(t, p, small, nil, 0, nDraws), want)

	p = seeded(19)
	p.Temperature = 1e6
	for i := range want {
		want[i] = 1 / float64(len(small))
	}
	requireChiSquare(t, drawCounts(t, p, small, nil, 0, nDraws), want)

	// Extreme temperatures and logits never produce NaN or a -Inf pick.
	big := []float32{3e38, -3e38, 1e38, 0}
	for _, temp := range []float32{math.MaxFloat32, 1e30, 1e-30, math.SmallestNonzeroFloat32} {
		p := seeded(20)
		p.Temperature = temp
		s := New(p, len(big))
		for range 100 {
			r, err := s.Sample(big, nil, 0)
			require.NoError(t, err)
			require.True(t, r.ID >= 0 && r.ID < len(big))
		}
	}
	// A tiny temperature is greedy.
	p = seeded(21)
	p.Temperature = 1e-30
	c := drawCounts(t, p, small, nil, 0, 1000)
	require.Equal(t, 1000, c[4])
}

func TestGreedyTieBreaking(t *testing.T) {
	p := DefaultParams()
	p.Temperature = 0
	s := New(p, 5)
	for _, tc := range []struct {
		logits []float32
		want   int
	}{
		{[]float32{1, 3, 3, 2, 3}, 1},
		{[]float32{7, 7, 7, 7, 7}, 0},
		{[]float32{float32(math.Inf(-1)), -5, -5, float32(math.Inf(-1)), -6}, 1},
		{[]float32{-1, -2, -3, -4, 0}, 4},
	} {
		r, err := s.Sample(tc.logits, nil, 0)
		require.NoError(t, err)
		require.Equal(t, tc.want, r.ID, "%v", tc.logits)
	}
	require.Equal(t, -1, Argmax(nil))
}

func TestPenaltiesExact(t *testing.T) {
	logits := []float32{2.0, -1.0, 0.5, 3.0, -2.0, 0.0, 1.0}
	p := DefaultParams()
	p.Temperature = 0
	p.RepetitionPenalty = 1.5
	p.PresencePenalty = 0.5
	p.FrequencyPenalty = 0.25
	// prompt [0 1 5], generated [3 3 1 4 5]
	prev := []int{0, 1, 5, 3, 3, 1, 4, 5}
	s := New(p, len(logits))
	r, err := s.Sample(logits, prev, 5)
	require.NoError(t, err)
	want := []float32{
		2.0 / 1.5,                 // 0: prompt only, positive: divided
		-1.0*1.5 - (0.5 + 0.25*1), // 1: negative: multiplied; generated once
		0.5,                       // 2: unseen
		3.0/1.5 - (0.5 + 0.25*2),  // 3: generated twice
		-2.0*1.5 - (0.5 + 0.25*1), // 4: generated once
		0.0*1.5 - (0.5 + 0.25*1),  // 5: zero logit, penalty leaves 0, then presence
		1.0,                       // 6: unseen
	}
	require.Equal(t, want, s.work[:len(logits)])
	require.Equal(t, 0, r.ID) // 1.333 beats 3.0/1.5 - 1 = 1.0 and 1.0 (id 6 > id 3)
	require.Equal(t, []float32{2.0, -1.0, 0.5, 3.0, -2.0, 0.0, 1.0}, logits, "input must not be modified")

	// Scratch state is clean: the same call gives the same penalised row.
	_, err = s.Sample(logits, prev, 5)
	require.NoError(t, err)
	require.Equal(t, want, s.work[:len(logits)])

	// Presence/frequency only count generated tokens; repetition counts the prompt too.
	p.RepetitionPenalty = 1
	s = New(p, len(logits))
	_, err = s.Sample(logits, prev, 0)
	require.NoError(t, err)
	require.Equal(t, logits, s.work[:len(logits)])
	p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty = 2, 0, 0
	s = New(p, len(logits))
	_, err = s.Sample(logits, prev, 0)
	require.NoError(t, err)
	require.Equal(t, []float32{1, -2, 0.5, 1.5, -4, 0, 1}, s.work[:len(logits)])

	// Negative penalties (allowed by OpenAI) encourage repetition.
	p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty = 1, -2, -2
	s = New(p, len(logits))
	r, err = s.Sample(logits, prev, 5)
	require.NoError(t, err)
	require.Equal(t, float32(3.0+2+2*2), s.work[3])
	require.Equal(t, 3, r.ID)
}

func TestSeeds(t *testing.T) {
	run := func(p Params) []int {
		s := New(p, len(small))
		out := make([]int, 200)
		for i := range out {
			r, err := s.Sample(small, nil, 0)
			require.NoError(t, err)
			out[i] = r.ID
		}
		return out
	}
	p := seeded(42)
	p.Temperature = 1.5
	a, b := run(p), run(p)
	require.Equal(t, a, b)
	p.Seed = 43
	require.NotEqual(t, a, run(p))
	// Unseeded samplers draw their seed from crypto/rand.
	p.HasSeed = false
	s1, s2 := New(p, 4), New(p, 4)
	require.NotEqual(t, s1.Seed(), s2.Seed())
	// Replaying from a step reproduces the rest of the sequence.
	p = seeded(42)
	p.Temperature = 1.5
	s := New(p, len(small))
	s.SetStep(150)
	for i := 150; i < 200; i++ {
		r, err := s.Sample(small, nil, 0)
		require.NoError(t, err)
		require.Equal(t, a[i], r.ID)
	}
	require.Equal(t, uint64(200), s.Step())
	// Uniform is the documented SplitMix64 (first output for seed 0 is
	// 0xE220A8397B1DCDAF, a published test vector).
	require.Equal(t, float64(uint64(0xE220A8397B1DCDAF)>>11)/(1<<53), Uniform(0, 0))
}

func TestMinTokensSuppressesEOS(t *testing.T) {
	logits := []float32{0, 1, 9, 0.5, 0, 10} // 5 = EOS, 2 = stop id
	for _, temp := range []float32{0, 1} {
		p := seeded(23)
		p.Temperature = temp
		p.MinTokens = 3
		p.EOSIDs = []int{5}
		p.StopIDs = []int{2}
		s := New(p, len(logits))
		prev := []int{1, 1, 1, 1}
		for gen := 0; gen < 3; gen++ {
			for range 200 {
				r, err := s.Sample(logits, prev, gen)
				require.NoError(t, err)
				require.True(t, r.ID != 5 && r.ID != 2, "gen %d drew %d", gen, r.ID)
			}
		}
		seen5 := false
		for range 200 {
			r, err := s.Sample(logits, prev, 3)
			require.NoError(t, err)
			seen5 = seen5 || r.ID == 5
		}
		require.True(t, seen5)
		require.Equal(t, FinishStop, s.Finish(5, 4))
		require.Equal(t, FinishStop, s.Finish(2, 4))
		require.Equal(t, FinishNone, s.Finish(1, 4))
	}
	p := DefaultParams()
	p.EOSIDs, p.IgnoreEOS, p.MaxTokens = []int{5}, true, 10
	s := New(p, 6)
	require.Equal(t, FinishNone, s.Finish(5, 3))
	require.Equal(t, FinishLength, s.Finish(5, 10))
	// Out-of-vocabulary stop ids are reported.
	p = DefaultParams()
	p.StopIDs = []int{6}
	_, err := New(p, 6).Sample(make([]float32, 6), nil, 0)
	require.ErrorContains(t, err, "outside the vocabulary")
}

func TestInputErrors(t *testing.T) {
	s := New(seeded(1), 4)
	_, err := s.Sample([]float32{0, float32(math.NaN()), 1, 2}, nil, 0)
	require.ErrorContains(t, err, "NaN")
	_, err = s.Sample([]float32{0, float32(math.Inf(1)), 1, 2}, nil, 0)
	require.ErrorContains(t, err, "+Inf")
	_, err = s.Sample([]float32{0, 1, 2}, nil, 0)
	require.ErrorContains(t, err, "vocabulary size")
	_, err = s.Sample([]float32{0, 1, 2, 3}, []int{7}, 0)
	require.ErrorContains(t, err, "outside the vocabulary")
	_, err = s.Sample([]float32{0, 1, 2, 3}, []int{1}, 2)
	require.ErrorContains(t, err, "generated")
	p := seeded(1)
	p.Temperature = 0
	_, err = New(p, 4).Sample([]float32{float32(math.NaN()), 0, 0, 0}, nil, 0)
	require.ErrorContains(t, err, "NaN")
	p.TopP = 0
	_, err = New(p, 4).Sample([]float32{0, 0, 0, 0}, nil, 0)
	require.ErrorContains(t, err, "top_p")
	_, err = New(DefaultParams(), 0).Sample(nil, nil, 0)
	require.ErrorContains(t, err, "vocabulary size must be > 0")
}

func TestValidate(t *testing.T) {
	require.NoError(t, DefaultParams().Validate())
	ok := DefaultParams()
	ok.Temperature, ok.TopK, ok.TopP, ok.MinP = 0, 40, 1e-9, 1
	ok.PresencePenalty, ok.FrequencyPenalty, ok.RepetitionPenalty = -2, 2, 0.5
	ok.TopLogprobs, ok.MinTokens, ok.MaxTokens = 20, 5, 5
	ok.StopStrings = []string{"a", "b", "c", "d", "e", "f"} // more than 4 is fine
	require.NoError(t, ok.Validate())

	nan := float32(math.NaN())
	for _, tc := range []struct {
		mod  func(*Params)
		want string
	}{
		{func(p *Params) { p.Temperature = -0.1 }, "temperature"},
		{func(p *Params) { p.Temperature = nan }, "temperature"},
		{func(p *Params) { p.Temperature = float32(math.Inf(1)) }, "temperature"},
		{func(p *Params) { p.TopP = 0 }, "top_p must be in (0, 1]"},
		{func(p *Params) { p.TopP = 1.01 }, "top_p"},
		{func(p *Params) { p.TopP = -1 }, "top_p"},
		{func(p *Params) { p.MinP = -0.01 }, "min_p must be in [0, 1]"},
		{func(p *Params) { p.MinP = 1.5 }, "min_p"},
		{func(p *Params) { p.TopK = -1 }, "top_k must be >= 0"},
		{func(p *Params) { p.RepetitionPenalty = 0 }, "repetition_penalty must be"},
		{func(p *Params) { p.RepetitionPenalty = -1 }, "repetition_penalty"},
		{func(p *Params) { p.PresencePenalty = 2.5 }, "presence_penalty must be in [-2, 2]"},
		{func(p *Params) { p.PresencePenalty = -2.01 }, "presence_penalty"},
		{func(p *Params) { p.FrequencyPenalty = -3 }, "frequency_penalty must be in [-2, 2]"},
		{func(p *Params) { p.TopLogprobs = 21 }, "top_logprobs must be in [0, 20]"},
		{func(p *Params) { p.TopLogprobs = -1 }, "top_logprobs"},
		{func(p *Params) { p.StopStrings = []string{"ok", ""} }, "stop string 1 is empty"},
		{func(p *Params) { p.MinTokens = -1 }, "min_tokens"},
		{func(p *Params) { p.MaxTokens = -1 }, "max_tokens"},
		{func(p *Params) { p.MinTokens, p.MaxTokens = 10, 5 }, "min_tokens (10) must be <= max_tokens (5)"},
		{func(p *Params) { p.StopIDs = []int{-1} }, "stop token id -1"},
	} {
		p := DefaultParams()
		tc.mod(&p)
		require.ErrorContains(t, p.Validate(), tc.want)
	}
	// Every problem is reported.
	p := DefaultParams()
	p.Temperature, p.TopK = -1, -1
	err := p.Validate()
	require.ErrorContains(t, err, "temperature")
	require.ErrorContains(t, err, "top_k")
}

func TestLogprobs(t *testing.T) {
	logits := []float32{1, 3, 3, 0.5, float32(math.Inf(-1)), 2}
	p := seeded(30)
	p.Logprobs = true
	p.TopLogprobs = 4
	p.RepetitionPenalty = 2 // must not affect reported logprobs
	s := New(p, len(logits))
	ref := LogSoftmax(nil, logits)
	for range 50 {
		r, err := s.Sample(logits, []int{1, 2}, 0)
		require.NoError(t, err)
		require.Equal(t, ref[r.ID], r.Logprob)
		require.Equal(t, []TokenLogprob{{1, ref[1]}, {2, ref[2]}, {5, ref[5]}, {0, ref[0]}}, r.Top)
	}
	// TopLogprobs larger than the vocabulary.
	p.TopLogprobs = 20
	r, err := New(p, 2).Sample([]float32{0, 1}, nil, 0)
	require.NoError(t, err)
	require.Len(t, r.Top, 2)
	require.Equal(t, 1, r.Top[0].ID)
	// Not requested: not computed.
	r, err = New(seeded(1), 2).Sample([]float32{0, 1}, nil, 0)
	require.NoError(t, err)
	require.Equal(t, float32(0), r.Logprob)
	require.Len(t, r.Top, 0)
}

func TestSoftmaxHelpers(t *testing.T) {
	x := []float32{1000, 1001, 999, float32(math.Inf(-1))}
	p := Softmax(nil, x)
	sum := 0.0
	for _, v := range p {
		sum += float64(v)
	}
	require.InDelta(t, 1.0, sum, 1e-6)
	require.Equal(t, float32(0), p[3])
	e := []float64{math.Exp(-1), 1, math.Exp(-2)}
	z := e[0] + e[1] + e[2]
	for i := range 3 {
		require.InDelta(t, e[i]/z, p[i], 1e-7)
	}
	lp := LogSoftmax(nil, x)
	for i := range 3 {
		require.InDelta(t, math.Log(e[i]/z), lp[i], 1e-5)
	}
	require.True(t, math.IsInf(float64(lp[3]), -1))
	// In place, and extreme magnitudes.
	y := []float32{-3e38, 3e38, 0}
	Softmax(y, y)
	require.Equal(t, []float32{0, 1, 0}, y)
	require.Equal(t, 1, Argmax([]float32{float32(math.NaN()), 2, 2}))
}

func TestNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	logits := make([]float32, 4096)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	prev := []int{1, 2, 3, 3, 4, 4000}
	p := seeded(1)
	p.TopK, p.TopP, p.MinP = 100, 0.9, 0.01
	p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty = 1.1, 0.1, 0.1
	p.Logprobs, p.TopLogprobs = true, 5
	s := New(p, len(logits))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := s.Sample(logits, prev, 3); err != nil {
			t.Fatal(err)
		}
	})
	require.Equal(t, 0.0, allocs)
}

// The kept set of the radix select matches a full sort on a real-size row.
func TestFullVocabAgainstSort(t *testing.T) {
	const V = 129280
	rng := rand.New(rand.NewPCG(7, 8))
	logits := make([]float32, V)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 2.5)
	}
	for _, tc := range []struct {
		k    int
		topP float32
	}{{50, 1}, {0, 0.9}, {1000, 0.5}} {
		p := seeded(uint64(tc.k) + 1)
		p.TopK, p.TopP = tc.k, tc.topP
		want := refDist(logits, p)
		s := New(p, V)
		for range 300 {
			r, err := s.Sample(logits, nil, 0)
			require.NoError(t, err)
			require.Greater(t, want[r.ID], 0.0, "token %d outside the kept set", r.ID)
		}
	}
}

// ArgmaxOnly holds exactly when Sample is a plain argmax, and Picked then keeps the sampler in
// step with one that called Sample.
func TestArgmaxOnlyAndPicked(t *testing.T) {
	const V = 50
	g := DefaultParams()
	g.Temperature = 0
	require.True(t, New(g, V).ArgmaxOnly())
	for name, change := range map[string]func(*Params){
		"temperature":  func(p *Params) { p.Temperature = 0.7 },
		"repetition":   func(p *Params) { p.RepetitionPenalty = 1.1 },
		"presence":     func(p *Params) { p.PresencePenalty = 0.5 },
		"frequency":    func(p *Params) { p.FrequencyPenalty = 0.5 },
		"logprobs":     func(p *Params) { p.Logprobs = true },
		"top_logprobs": func(p *Params) { p.TopLogprobs = 2 },
		"stop id":      func(p *Params) { p.StopIDs = []int{V} },
		"eos id":       func(p *Params) { p.EOSIDs = []int{V + 3} },
		"invalid":      func(p *Params) { p.TopP = 2 },
	} {
		p := g
		change(&p)
		require.False(t, New(p, V).ArgmaxOnly(), name)
	}
	r := rand.New(rand.NewPCG(1, 2))
	a, b := New(g, V), New(g, V)
	var prev []int
	for i := 0; i < 20; i++ {
		logits := make([]float32, V)
		for j := range logits {
			logits[j] = float32(r.NormFloat64())
		}
		res, err := a.Sample(logits, prev, i)
		require.NoError(t, err)
		require.Equal(t, Argmax(logits), res.ID)
		require.Equal(t, res, b.Picked(Argmax(logits)))
		require.Equal(t, a.Step(), b.Step())
		prev = append(prev, res.ID)
	}
}
