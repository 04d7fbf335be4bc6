package engine

import (
	"context"
	"time"

	"github.com/deepgo/deepgo/go/model/deepseek"
	"github.com/deepgo/deepgo/go/sampling"
	"github.com/deepgo/deepgo/go/tokenizer"
)

// Token is one generated token as it is produced.
type Token struct {
	ID   int
	Text string // the text it completes (may be empty inside a UTF-8 sequence or a held-back stop prefix)
	sampling.Result
}

// Stats are the timings of one generation.
type Stats struct {
	PromptTokens    int
	GeneratedTokens int
	Prefill         time.Duration // prompt processing, up to the first token
	Decode          time.Duration // everything after the first token
	FinishReason    sampling.FinishReason
}

// PrefillTokensPerSec and DecodeTokensPerSec are the summary rates.
func (s Stats) PrefillTokensPerSec() float64 { return rate(s.PromptTokens, s.Prefill) }
func (s Stats) DecodeTokensPerSec() float64 {
	return rate(s.GeneratedTokens-1, s.Decode)
}

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Generate continues prompt ids with sampled tokens until a stop condition, calling onToken
// for each (returning false stops early). Cancelling ctx stops within one step.
func (e *Engine) Generate(ctx context.Context, ids []int32, p sampling.Params, onToken func(Token) bool) (Stats, error) {
	st := Stats{PromptTokens: len(ids)}
	if err := p.Validate(); err != nil {
		return st, err
	}
	if len(ids) == 0 {
		return st, errorf("generate: empty prompt")
	}
	if err := e.checkPrompt(ids, 1); err != nil {
		return st, err
	}
	if len(p.EOSIDs) == 0 {
		p.EOSIDs = e.eosIDs()
	}
	room := e.Model.Opts.MaxContext - len(ids)
	if p.MaxTokens <= 0 || p.MaxTokens > room {
		p.MaxTokens = room
	}
	smp := sampling.New(p, e.Cfg.VocabSize)
	var dec *tokenizer.StreamDecoder
	var stops *sampling.StopMatcher
	if e.Tok != nil {
		dec = e.Tok.NewStreamDecoder(true)
		if len(p.StopStrings) > 0 {
			stops = sampling.NewStopMatcher(p.StopStrings)
		}
	}
	seq := &deepseek.Sequence{}
	defer e.Model.KV.Release(seq)
	history := make([]int, 0, len(ids)+p.MaxTokens)
	for _, id := range ids {
		history = append(history, int(id))
	}
	// Greedy requests that need nothing but the token (no penalties, logprobs or MinTokens
	// suppression at this step) take the argmax on the device and download only the id: the
	// same token as sampling.Sample's greedy rule (ties to the lowest id). Rows with a NaN, a
	// +Inf or only -Inf come back as logits and go through Sample, which reports them.
	devGreedy := smp.ArgmaxOnly()
	pick := func(generated int) bool { return devGreedy && generated >= p.MinTokens }
	step := func(toks []int32, want int, generated int) ([]float32, int32, error) {
		r := deepseek.Request{Seq: seq, Tokens: toks, Logits: want, Argmax: want == deepseek.LogitsLast && pick(generated)}
		out, ids, err := e.Model.StepIDs([]deepseek.Request{r})
		if err != nil {
			return nil, -1, err
		}
		return out[0], ids[0], nil
	}
	start := time.Now()
	var logits []float32
	picked := int32(-1)
	chunk := e.Model.Opts.MaxTokens
	for s := 0; s < len(ids); s += chunk {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		end := min(s+chunk, len(ids))
		want := deepseek.LogitsNone
		if end == len(ids) {
			want = deepseek.LogitsLast
		}
		var err error
		if logits, picked, err = step(ids[s:end], want, st.GeneratedTokens); err != nil {
			return st, err
		}
	}
	var firstAt time.Time
	for {
		var res sampling.Result
		if picked >= 0 {
			res = smp.Picked(int(picked))
		} else {
			var err error
			if res, err = smp.Sample(logits, history, st.GeneratedTokens); err != nil {
				return st, err
			}
		}
		st.GeneratedTokens++
		if st.GeneratedTokens == 1 {
			firstAt = time.Now()
			st.Prefill = firstAt.Sub(start)
		}
		history = append(history, res.ID)
		tok := Token{ID: res.ID, Result: res}
		finish := smp.Finish(res.ID, st.GeneratedTokens)
		tok.Text, finish = emitText(dec, stops, res.ID, finish == sampling.FinishStop, finish)
		if !onToken(tok) {
			finish = sampling.FinishStop
		}
		if finish != sampling.FinishNone {
			st.FinishReason = finish
			break
		}
		if err := ctx.Err(); err != nil {
			st.FinishReason = sampling.FinishStop
			st.Decode = time.Since(firstAt)
			return st, err
		}
		var err error
		if logits, picked, err = step([]int32{int32(res.ID)}, deepseek.LogitsLast, st.GeneratedTokens); err != nil {
			return st, err
		}
	}
	st.Decode = time.Since(firstAt)
	return st, nil
}

func (e *Engine) eosIDs() []int {
	ids := append([]int(nil), e.Cfg.EosTokenID...)
	if e.Tok != nil && e.Tok.EOS() >= 0 {
		ids = append(ids, e.Tok.EOS())
	}
	return ids
}

// emitText decodes a token into the text to show: a stop token prints nothing; stop strings
// cut the text and end generation; at the end, text held back (an incomplete UTF-8 sequence,
// a possible stop-string prefix) is flushed.
func emitText(dec *tokenizer.StreamDecoder, stops *sampling.StopMatcher, id int, stopToken bool,
	finish sampling.FinishReason) (string, sampling.FinishReason) {
	if dec == nil {
		return "", finish
	}
	text := ""
	if !stopToken {
		text = dec.Add(id)
	}
	if stops != nil {
		var hit bool
		if text, hit = stops.Push(text); hit {
			return text, sampling.FinishStop
		}
	}
	if finish == sampling.FinishNone {
		return text, finish
	}
	rest := dec.Flush()
	if stops != nil {
		var hit bool
		if rest, hit = stops.Push(rest); hit {
			return text + rest, sampling.FinishStop
		}
		rest += stops.Flush()
	}
	return text + rest, finish
}

// SamplingParams are the sampling parameters Generate takes.
type SamplingParams = sampling.Params
