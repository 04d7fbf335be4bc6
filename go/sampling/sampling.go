// Package sampling implements the token-selection rules of the deepgo
// server: logit penalties, greedy decoding, temperature, top-k, top-p,
// min-p, a seeded reproducible draw, log-probabilities and stop strings.
//
// The code is plain Go, but it is written as the reference for a future GPU
// kernel: the steps below are a fixed sequence of passes over one logits
// row (element-wise maps, reductions, histograms and stable compactions),
// all scratch memory is allocated once in New and reused, and Sample does
// not allocate.
//
// # Order of operations (one call to Sample, one logits row of size V)
//
//  0. Check: len(logits) == V, every id in prev is in [0,V), generated <=
//     len(prev). A NaN or +Inf logit is an error (-Inf is allowed and means
//     "never pick this token").
//  1. Copy logits into the scratch row w (the caller's slice is never
//     written).
//  2. Penalties, once per distinct token t of prev (prompt + generated):
//     repetition (HF / llama.cpp): w[t] = w[t] / r if w[t] > 0 else w[t] * r;
//     then presence/frequency (OpenAI), with c = number of times t occurs in
//     the last `generated` entries of prev: w[t] -= presence*[c>0] + frequency*c.
//     A finite penalised logit is clamped to ±MaxFloat32 so it stays finite.
//  3. While generated < MinTokens: w[t] = -Inf for t in StopIDs ∪ EOSIDs.
//  4. Temperature == 0: the result is Argmax(w) (ties -> lowest id); stop.
//  5. m = max(w). For each token, d = m - w (float32, so d >= 0 and the best
//     token has d == 0 exactly). Tokens with d == +Inf (logit -Inf, or a
//     difference that overflows and therefore has probability 0) are not
//     candidates. The canonical order of candidates is (d ascending, id
//     ascending), i.e. descending probability with ties broken by lower id.
//     The sort key is the IEEE-754 bit pattern of d (monotone for d >= 0).
//  6. top_k (k > 0): keep the first k candidates in canonical order.
//  7. Softmax numerators in float64: e = exp(-d * (1/T)), with 1/T computed in
//     float64. e[best] == 1, so there is no overflow for any T > 0 and a
//     very large T gives e -> 1 (uniform over the kept set). Tokens whose e
//     underflows to 0 are dropped. Z = sum of e over the kept set, summed
//     in ascending id order.
//  8. top_p (p < 1): keep the shortest canonical prefix whose mass is >= p*Z
//     (at least one token).
//  9. min_p (> 0): keep tokens with e >= min_p (p_i >= min_p * p_max, since
//     e_max == 1). The best token is always kept.
//  10. Renormalise: Z = sum of e over the kept set (ascending id order).
//  11. Draw: u = uniform [0,1) from SplitMix64 (see Uniform) keyed by (seed,
//     step); pick the first token in canonical order whose cumulative mass
//     exceeds u*Z (inverse CDF).
//  12. Log-probabilities (only when Logprobs or TopLogprobs > 0) are the
//     log-softmax of the RAW logits as passed in: before penalties,
//     MinTokens suppression, temperature and truncation. This is the model's
//     own distribution, which is what the OpenAI API reports and what vLLM V1
//     reports by default ("raw_logprobs"); it does not depend on the sampling
//     parameters of the request.
//
// The "prefix in canonical order" searches of steps 6, 8 and 11 are done
// with a three-pass radix select over the 32-bit key (bits 31..20, 19..8,
// 7..0; one histogram of counts or float64 masses per pass, each bucket
// summed in ascending id order, buckets scanned in ascending key order),
// followed by a scan of the tokens whose key equals the selected key, in
// ascending id order. This is the algorithm GPU top-k / top-p kernels use;
// the vocabulary is never sorted. When at most 32 tokens remain (at the
// start or after a pass), they are insertion-sorted into canonical order
// and scanned sequentially instead. Cumulative masses are therefore summed
// in this fixed, data-independent structure rather than strictly
// sequentially in canonical order; the two agree up to float64 rounding,
// and a port must follow the same structure to reproduce draws bit for bit
// (it must also use a bit-identical exp and avoid FMA contraction). Note
// that Go's math.Exp itself uses FMA on amd64 CPUs that have it, so even two
// CPUs may differ in the last bit of e; a draw can only change when u falls
// within that rounding of a cumulative-mass boundary.
//
// A Sampler is not safe for concurrent use; use one per sequence.
package sampling

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxTopLogprobs is the largest TopLogprobs accepted (the OpenAI limit).
const MaxTopLogprobs = 20

// Params are the sampling parameters of one request.
type Params struct {
	// Temperature divides the logits; 0 means greedy (argmax).
	Temperature float32
	// TopK keeps the K most likely tokens; 0 means off.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// mass is >= TopP; 1 means off. Must be in (0, 1].
	TopP float32
	// MinP keeps tokens whose probability is >= MinP * (largest
	// probability); 0 means off. Must be in [0, 1].
	MinP float32
	// RepetitionPenalty (HF / llama.cpp semantics): for every token seen in
	// prompt + output, a positive logit is divided by it and a negative one
	// multiplied by it. 1 means off; must be > 0.
	RepetitionPenalty float32
	// PresencePenalty and FrequencyPenalty (OpenAI semantics), over the
	// generated tokens only: logit -= presence*[count>0] + frequency*count.
	// Both in [-2, 2]; 0 means off.
	PresencePenalty  float32
	FrequencyPenalty float32
	// Seed makes the draws reproducible when HasSeed is true; otherwise the
	// seed comes from crypto/rand (see Sampler.Seed).
	Seed    uint64
	HasSeed bool
	// MinTokens: stop and EOS tokens cannot be sampled before this many
	// tokens have been generated.
	MinTokens int
	// MaxTokens is the generation limit; 0 means no limit from the request
	// (the server applies the context limit). See Sampler.Finish.
	MaxTokens int
	// StopIDs are token ids that end generation (never included in the
	// output text by the server).
	StopIDs []int
	// StopStrings end generation when they appear in the decoded text
	// (see StopMatcher). Any number is allowed; none may be empty.
	StopStrings []string
	// EOSIDs are the model's end-of-sequence ids. The server fills them
	// from the model config; they are not part of the public request.
	EOSIDs []int
	// IgnoreEOS: reaching an EOS id does not end generation (it can still
	// be sampled; MinTokens suppression still applies to it).
	IgnoreEOS bool
	// Logprobs requests Result.Logprob; TopLogprobs (0..20) requests that
	// many most likely alternatives in Result.Top (and implies Logprobs).
	Logprobs    bool
	TopLogprobs int
}

// DefaultParams returns the OpenAI defaults: temperature 1, every filter
// and penalty off, no seed, no limits.
func DefaultParams() Params {
	return Params{
		Temperature:       1,
		TopP:              1,
		RepetitionPenalty: 1,
	}
}

func finite32(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// Validate reports every invalid field (errors.Join of one error per
// problem), or nil.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sampling: "+format, a...)) }
	if !finite32(p.Temperature) || p.Temperature < 0 {
		bad("temperature must be a finite number >= 0, got %v", p.Temperature)
	}
	if p.TopK < 0 {
		bad("top_k must be >= 0 (0 disables it), got %d", p.TopK)
	}
	if !finite32(p.TopP) || p.TopP <= 0 || p.TopP > 1 {
		bad("top_p must be in (0, 1] (1 disables it), got %v", p.TopP)
	}
	if !finite32(p.MinP) || p.MinP < 0 || p.MinP > 1 {
		bad("min_p must be in [0, 1] (0 disables it), got %v", p.MinP)
	}
	if !finite32(p.RepetitionPenalty) || p.RepetitionPenalty <= 0 {
		bad("repetition_penalty must be a finite number > 0 (1 disables it), got %v", p.RepetitionPenalty)
	}
	if !finite32(p.PresencePenalty) || p.PresencePenalty < -2 || p.PresencePenalty > 2 {
		bad("presence_penalty must be in [-2, 2], got %v", p.PresencePenalty)
	}
	if !finite32(p.FrequencyPenalty) || p.FrequencyPenalty < -2 || p.FrequencyPenalty > 2 {
		bad("frequency_penalty must be in [-2, 2], got %v", p.FrequencyPenalty)
	}
	if p.TopLogprobs < 0 || p.TopLogprobs > MaxTopLogprobs {
		bad("top_logprobs must be in [0, %d], got %d", MaxTopLogprobs, p.TopLogprobs)
	}
	if p.MinTokens < 0 {
		bad("min_tokens must be >= 0, got %d", p.MinTokens)
	}
	if p.MaxTokens < 0 {
		bad("max_tokens must be >= 0 (0 = no limit), got %d", p.MaxTokens)
	}
	if p.MaxTokens > 0 && p.MinTokens > p.MaxTokens {
		bad("min_tokens (%d) must be <= max_tokens (%d)", p.MinTokens, p.MaxTokens)
	}
	for i, id := range p.StopIDs {
		if id < 0 {
			bad("stop token id %d (index %d) is negative", id, i)
		}
	}
	for i, id := range p.EOSIDs {
		if id < 0 {
			bad("eos token id %d (index %d) is negative", id, i)
		}
	}
	for i, s := range p.StopStrings {
		if s == "" {
			bad("stop string %d is empty", i)
		}
	}
	return errors.Join(errs...)
}

// TokenLogprob is one token with its log-probability.
type TokenLogprob struct {
	ID      int
	Logprob float32
}

// Result is the outcome of one Sample call.
type Result struct {
	// ID is the selected token.
	ID int
	// Logprob is the log-softmax of the raw logits (before penalties,
	// temperature and truncation) at ID. Filled only when Params.Logprobs
	// or Params.TopLogprobs > 0; otherwise 0.
	Logprob float32
	// Top holds the TopLogprobs most likely tokens of the same raw
	// distribution, in descending log-probability, ties by lower id. It
	// aliases the Sampler's scratch memory and is valid until the next
	// Sample call; copy it to keep it.
	Top []TokenLogprob
}

// FinishReason says why generation ended ("" = it did not).
type FinishReason string

// Finish reasons, as in the OpenAI API.
const (
	FinishNone   FinishReason = ""
	FinishStop   FinishReason = "stop"
	FinishLength FinishReason = "length"
)

// radix-select passes over the 32-bit key: shifts and bucket counts.
var (
	radixShift = [3]uint{20, 8, 0}
	radixBits  = [3]uint{12, 12, 8}
)

const radixBuckets = 1 << 12

// keyInf is the key of d == +Inf: not a candidate.
const keyInf = 0x7f800000

// Sampler applies Params to successive logits rows of one sequence. Build
// it with New. All scratch memory is allocated by New.
type Sampler struct {
	p     Params
	vocab int
	seed  uint64
	step  uint64
	err   error
	invT  float64
	logp  bool

	work   []float32 // penalised logits
	keys   []uint32  // float32 bits of d = max - work
	e      []float64 // softmax numerators, indexed by token id
	cand   []int32   // candidate ids, ascending
	eq     []int32   // ids whose key equals the selected key, ascending
	counts []int32   // per-token count over generated tokens (kept zero between calls)
	seen   []bool    // per-token "already penalised" mark (kept false between calls)
	stops  []int32   // StopIDs ∪ EOSIDs, for MinTokens suppression

	histN [radixBuckets]uint32
	histM [radixBuckets]float64
	top   [MaxTopLogprobs]TokenLogprob
}

// New returns a Sampler for a vocabulary of size vocab. Invalid parameters
// (see Params.Validate) or token ids outside [0, vocab) are reported by
// every Sample call. When p.HasSeed is false the seed is drawn from
// crypto/rand.
func New(p Params, vocab int) *Sampler {
	s := &Sampler{p: p, vocab: vocab}
	var errs []error
	if err := p.Validate(); err != nil {
		errs = append(errs, err)
	}
	if vocab <= 0 {
		errs = append(errs, fmt.Errorf("sampling: vocabulary size must be > 0, got %d", vocab))
		vocab = 0
	}
	for _, ids := range [][]int{p.StopIDs, p.EOSIDs} {
		for _, id := range ids {
			if id >= vocab && vocab > 0 {
				errs = append(errs, fmt.Errorf("sampling: stop/eos token id %d is outside the vocabulary [0, %d)", id, vocab))
			} else if id >= 0 && id < vocab {
				s.stops = append(s.stops, int32(id))
			}
		}
	}
	s.err = errors.Join(errs...)
	if p.HasSeed {
		s.seed = p.Seed
	} else {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("sampling: crypto/rand: " + err.Error())
		}
		s.seed = binary.LittleEndian.Uint64(b[:])
	}
	if p.Temperature > 0 {
		s.invT = 1 / float64(p.Temperature)
	}
	s.logp = p.Logprobs || p.TopLogprobs > 0
	s.work = make([]float32, vocab)
	s.keys = make([]uint32, vocab)
	s.e = make([]float64, vocab)
	s.cand = make([]int32, vocab)
	s.eq = make([]int32, vocab)
	s.counts = make([]int32, vocab)
	s.seen = make([]bool, vocab)
	return s
}

// Params returns the parameters the Sampler was built with.
func (s *Sampler) Params() Params { return s.p }

// Seed returns the seed in use (the drawn one when Params.HasSeed is false),
// so that a run can be logged and replayed.
func (s *Sampler) Seed() uint64 { return s.seed }

// Step returns the number of Sample calls made so far; the draw of the
// next call uses Uniform(Seed(), Step()).
func (s *Sampler) Step() uint64 { return s.step }

// SetStep sets the step counter, e.g. to resume a preempted sequence so
// that it reproduces the draws of an uninterrupted run.
func (s *Sampler) SetStep(step uint64) { s.step = step }

// ArgmaxOnly reports whether Sample, from MinTokens on, returns nothing but the argmax of the
// logits row (ties to the lowest id): greedy, no penalties, no log-probabilities, and parameters
// New accepted. A caller may then pick the token elsewhere (the device's argmax) and record it
// with Picked instead of calling Sample.
func (s *Sampler) ArgmaxOnly() bool {
	return s.err == nil && s.p.Temperature == 0 && s.p.RepetitionPenalty == 1 && s.p.PresencePenalty == 0 &&
		s.p.FrequencyPenalty == 0 && !s.logp
}

// Picked records token id chosen outside Sample under ArgmaxOnly (at a step with generated >=
// MinTokens): the step counter advances as Sample's does.
func (s *Sampler) Picked(id int) Result {
	s.step++
	return Result{ID: id}
}

// IsStopToken reports whether token id ends generation: it is one of
// StopIDs, or one of EOSIDs and IgnoreEOS is false.
func (s *Sampler) IsStopToken(id int) bool {
	for _, t := range s.p.StopIDs {
		if t == id {
			return true
		}
	}
	if !s.p.IgnoreEOS {
		for _, t := range s.p.EOSIDs {
			if t == id {
				return true
			}
		}
	}
	return false
}

// Finish reports whether generation ends after token id was produced as
// the generated-th output token (counting from 1): FinishStop for a stop
// token, FinishLength when MaxTokens is reached, else FinishNone. Stop
// strings are handled separately by StopMatcher.
func (s *Sampler) Finish(id, generated int) FinishReason {
	if s.IsStopToken(id) {
		return FinishStop
	}
	if s.p.MaxTokens > 0 && generated >= s.p.MaxTokens {
		return FinishLength
	}
	return FinishNone
}

// Uniform returns the uniform [0,1) variate used for draw number step of a
// sequence with the given seed: the (step+1)-th output of SplitMix64
// (Steele, Lea, Flood 2014) started from state seed, i.e.
//
//	z = seed + (step+1) * 0x9E3779B97F4A7C15   (mod 2^64)
//	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
//	z = (z ^ z>>27) * 0x94D049BB133111EB
//	z = z ^ z>>31
//	u = (z >> 11) * 2^-53
//
// It is counter based (no state besides (seed, step)), so a GPU kernel can
// compute it independently for every sequence of a batch.
func Uniform(seed, step uint64) float64 {
	z := seed + (step+1)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return float64(z>>11) * (1.0 / (1 << 53))
}

// Sample selects the next token from one row of logits. prev holds the
// prompt followed by the tokens generated so far; generated is how many of
// the last entries of prev are generated tokens (and is compared against
// MinTokens). Each successful call advances the step counter by one, also
// on greedy decoding, so that the draw of step n depends only on (seed, n).
// See the package documentation for the exact order of operations.
func (s *Sampler) Sample(logits []float32, prev []int, generated int) (Result, error) {
	if s.err != nil {
		return Result{}, s.err
	}
	V := s.vocab
	if len(logits) != V {
		return Result{}, fmt.Errorf("sampling: got %d logits, vocabulary size is %d", len(logits), V)
	}
	if generated < 0 || generated > len(prev) {
		return Result{}, fmt.Errorf("sampling: generated = %d, must be in [0, len(prev) = %d]", generated, len(prev))
	}
	for i, id := range prev {
		if id < 0 || id >= V {
			return Result{}, fmt.Errorf("sampling: prev[%d] = %d is outside the vocabulary [0, %d)", i, id, V)
		}
	}

	// 0-1. Check and copy.
	w := s.work
	for i, x := range logits {
		if x != x || x > math.MaxFloat32 {
			return Result{}, fmt.Errorf("sampling: logit %d is %v", i, x)
		}
		w[i] = x
	}
	step := s.step

	// 2. Penalties.
	s.applyPenalties(prev, generated)

	// 3. MinTokens.
	if generated < s.p.MinTokens {
		ninf := float32(math.Inf(-1))
		for _, t := range s.stops {
			w[t] = ninf
		}
	}

	var id int
	if s.p.Temperature == 0 {
		// 4. Greedy.
		id = Argmax(w)
		if id < 0 || math.IsInf(float64(w[id]), -1) {
			return Result{}, errors.New("sampling: every token has logit -Inf")
		}
	} else {
		var err error
		if id, err = s.draw(Uniform(s.seed, step)); err != nil {
			return Result{}, err
		}
	}

	s.step++
	res := Result{ID: id}
	if s.logp {
		s.logprobs(logits, &res)
	}
	return res, nil
}

// applyPenalties is step 2. It leaves counts and seen all zero.
func (s *Sampler) applyPenalties(prev []int, generated int) {
	rp, pp, fp := s.p.RepetitionPenalty, s.p.PresencePenalty, s.p.FrequencyPenalty
	if (rp == 1 && pp == 0 && fp == 0) || len(prev) == 0 {
		return
	}
	w := s.work
	gen := prev[len(prev)-generated:]
	if pp != 0 || fp != 0 {
		for _, t := range gen {
			s.counts[t]++
		}
	}
	for _, t := range prev {
		if s.seen[t] {
			continue
		}
		s.seen[t] = true
		x := w[t]
		if math.IsInf(float64(x), -1) {
			continue
		}
		if rp != 1 {
			if x > 0 {
				x /= rp
			} else {
				x *= rp
			}
		}
		if c := s.counts[t]; c > 0 {
			x -= pp + fp*float32(c)
		}
		w[t] = clampFinite(x)
	}
	for _, t := range prev {
		s.seen[t] = false
		s.counts[t] = 0
	}
}

func clampFinite(x float32) float32 {
	if x > math.MaxFloat32 {
		return math.MaxFloat32
	}
	if x < -math.MaxFloat32 {
		return -math.MaxFloat32
	}
	return x
}

// draw runs steps 5-11 and returns the chosen token.
func (s *Sampler) draw(u float64) (int, error) {
	w, keys := s.work, s.keys

	// 5. Keys and candidates.
	m := maxOf(w)
	if math.IsInf(float64(m), -1) {
		return 0, errors.New("sampling: every token has logit -Inf")
	}
	e, invT := s.e, s.invT
	cand := s.cand[:0]
	var z float64
	if k := s.p.TopK; k > 0 && k < len(w) {
		for i, x := range w {
			kk := math.Float32bits(m - x)
			keys[i] = kk
			if kk < keyInf {
				cand = append(cand, int32(i))
			}
		}
		// 6. top_k.
		if k < len(cand) {
			K, before, eq := s.radixSelect(cand, selCount, float64(k))
			r := k - int(before)
			if r > len(eq) { // cannot happen; defensive
				r = len(eq)
			}
			cand = keepPrefix(cand, keys, K, r)
		}
		// 7. Softmax numerators; drop underflows.
		n := 0
		for _, id := range cand {
			v := math.Exp(-float64(math.Float32frombits(keys[id])) * invT)
			if v > 0 {
				e[id] = v
				cand[n] = id
				n++
				z += v
			}
		}
		cand = cand[:n]
	} else {
		// Steps 5 and 7 fused (no top_k).
		for i, x := range w {
			d := m - x
			kk := math.Float32bits(d)
			keys[i] = kk
			if kk < keyInf {
				if v := math.Exp(-float64(d) * invT); v > 0 {
					e[i] = v
					cand = append(cand, int32(i))
					z += v
				}
			}
		}
	}

	// 8. top_p.
	if p := s.p.TopP; p < 1 && len(cand) > 1 {
		target := float64(p) * z
		K, before, eq := s.radixSelect(cand, selMassGE, target)
		r := len(eq)
		c := before
		for i, id := range eq {
			c += e[id]
			if c >= target {
				r = i + 1
				break
			}
		}
		cand, z = keepPrefixMass(cand, keys, e, K, r)
	}

	// 9. min_p: e_max == 1.
	if mp := float64(s.p.MinP); mp > 0 && len(cand) > 1 {
		n := 0
		z = 0
		for _, id := range cand {
			if v := e[id]; v >= mp {
				cand[n] = id
				n++
				z += v
			}
		}
		cand = cand[:n]
	}

	if len(cand) == 1 {
		return int(cand[0]), nil
	}

	// 10. Renormalise (z is the mass of the kept set). 11. Inverse CDF.
	target := u * z
	_, before, eq := s.radixSelect(cand, selMassGT, target)
	c := before
	for _, id := range eq {
		c += e[id]
		if c > target {
			return int(id), nil
		}
	}
	return int(eq[len(eq)-1]), nil // rounding: target at the very end
}

// keepPrefixMass is keepPrefix that also returns the mass of the kept set,
// summed in ascending id order.
func keepPrefixMass(cand []int32, keys []uint32, e []float64, K uint32, r int) ([]int32, float64) {
	n := 0
	z := 0.0
	for _, id := range cand {
		k := keys[id]
		if k < K || (k == K && r > 0) {
			if k == K {
				r--
			}
			cand[n] = id
			n++
			z += e[id]
		}
	}
	return cand[:n], z
}

// keepPrefix compacts cand (stable) to the canonical prefix made of every
// token with key < K and the first r tokens (ascending id) with key == K.
func keepPrefix(cand []int32, keys []uint32, K uint32, r int) []int32 {
	n := 0
	for _, id := range cand {
		k := keys[id]
		if k < K || (k == K && r > 0) {
			if k == K {
				r--
			}
			cand[n] = id
			n++
		}
	}
	return cand[:n]
}

type selMode int

const (
	selCount  selMode = iota // first bucket where count reaches target
	selMassGE                // first bucket where mass >= target
	selMassGT                // first bucket where mass > target
)

// radixSelect finds, in canonical order over cand (ascending ids), the key
// K of the token at which the cumulative count or mass first reaches
// target. It returns K, the cumulative quantity of all tokens with key < K
// and the tokens with key == K in ascending id order (a view of s.eq).
// If rounding means the target is never reached, the last key is chosen.
func (s *Sampler) radixSelect(cand []int32, mode selMode, target float64) (uint32, float64, []int32) {
	keys, e := s.keys, s.e
	if len(cand) <= smallList {
		return s.smallSelect(cand, mode, target, 0)
	}
	list := cand
	before := 0.0
	for pass := 0; pass < 3; pass++ {
		shift, nb := radixShift[pass], uint32(1)<<radixBits[pass]
		mask := nb - 1
		// The histograms are all zero on entry; only [lo, hi] is used.
		hn, hm := s.histN[:nb], s.histM[:nb]
		lo, hi := nb, uint32(0)
		if mode == selCount {
			for _, id := range list {
				b := (keys[id] >> shift) & mask
				lo, hi = min(lo, b), max(hi, b)
				hn[b]++
			}
		} else {
			for _, id := range list {
				b := (keys[id] >> shift) & mask
				lo, hi = min(lo, b), max(hi, b)
				hn[b]++
				hm[b] += e[id]
			}
		}
		chosen, last := -1, -1
		lastBefore := before
		for b := lo; b <= hi; b++ {
			if hn[b] == 0 {
				continue
			}
			q := float64(hn[b])
			if mode != selCount {
				q = hm[b]
			}
			c := before + q
			if (mode == selMassGT && c > target) || (mode != selMassGT && c >= target) {
				chosen = int(b)
				break
			}
			last, lastBefore = int(b), before
			before = c
		}
		if chosen < 0 {
			chosen, before = last, lastBefore
		}
		inBucket := int(hn[chosen])
		clear(hn[lo : hi+1])
		clear(hm[lo : hi+1])
		if inBucket == len(list) {
			continue
		}
		// Stable in-place compaction into s.eq (first pass copies from cand).
		out := s.eq[:0]
		for _, id := range list {
			if (keys[id]>>shift)&mask == uint32(chosen) {
				out = append(out, id)
			}
		}
		list = out
		if len(list) <= smallList && pass < 2 {
			return s.smallSelect(list, mode, target, before)
		}
	}
	return keys[list[0]], before, list
}

// smallList is the candidate count at or below which radixSelect sorts.
const smallList = 32

// smallSelect is radixSelect for short lists: an insertion sort into
// canonical order and a sequential scan starting from base (the quantity
// of the tokens that precede the whole list in canonical order).
func (s *Sampler) smallSelect(cand []int32, mode selMode, target, base float64) (uint32, float64, []int32) {
	keys, e := s.keys, s.e
	list := s.eq[:len(cand)]
	copy(list, cand)
	for i := 1; i < len(list); i++ { // stable: ids stay ascending within a key
		id := list[i]
		k := keys[id]
		j := i
		for j > 0 && keys[list[j-1]] > k {
			list[j] = list[j-1]
			j--
		}
		list[j] = id
	}
	j := len(list) - 1 // rounding fallback: the last token
	c := base
	for i, id := range list {
		q := 1.0
		if mode != selCount {
			q = e[id]
		}
		c += q
		if (mode == selMassGT && c > target) || (mode != selMassGT && c >= target) {
			j = i
			break
		}
	}
	K := keys[list[j]]
	i0, i1 := j, j+1
	for i0 > 0 && keys[list[i0-1]] == K {
		i0--
	}
	for i1 < len(list) && keys[list[i1]] == K {
		i1++
	}
	before := base
	for _, id := range list[:i0] {
		if mode == selCount {
			before++
		} else {
			before += e[id]
		}
	}
	return K, before, list[i0:i1]
}

// logprobs fills res.Logprob and res.Top from the raw logits (step 12).
func (s *Sampler) logprobs(logits []float32, res *Result) {
	m := float64(maxOf(logits))
	sum := 0.0
	for _, x := range logits {
		sum += math.Exp(float64(x) - m)
	}
	lse := m + math.Log(sum)
	res.Logprob = float32(float64(logits[res.ID]) - lse)
	n := s.p.TopLogprobs
	if n == 0 {
		return
	}
	if n > len(logits) {
		n = len(logits)
	}
	// Insertion into a sorted array of n (descending logit, ascending id);
	// ids arrive in ascending order, so a strict ">" keeps ties by id.
	top := s.top[:0]
	for i, x := range logits {
		if len(top) == n && !(x > float32(top[n-1].Logprob)) {
			continue
		}
		j := len(top)
		if j < n {
			top = append(top, TokenLogprob{})
		} else {
			j = n - 1
		}
		for j > 0 && x > top[j-1].Logprob {
			top[j] = top[j-1]
			j--
		}
		top[j] = TokenLogprob{ID: i, Logprob: x}
	}
	for i := range top {
		top[i].Logprob = float32(float64(top[i].Logprob) - lse)
	}
	res.Top = top
}
