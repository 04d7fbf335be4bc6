package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// ServeOptions drive a load test of a running OpenAI-compatible server (deepgo serve or any
// other): Clients concurrent streaming clients, each sending Requests completions one after
// another, with token-id prompts (so the model needs no tokenizer) and ignore_eos, so every
// request generates exactly MaxTokens tokens.
type ServeOptions struct {
	URL          string // http://127.0.0.1:8080
	Model        string
	Clients      []int
	Requests     int // per client
	PromptTokens int
	MaxTokens    int
	APIKey       string
	Timeout      time.Duration
}

// ServeResult is one concurrency level.
type ServeResult struct {
	Clients          int     `json:"clients"`
	Requests         int     `json:"requests"`
	Failed           int     `json:"failed"`
	FirstError       string  `json:"first_error,omitempty"`
	WallS            float64 `json:"wall_s"`
	GeneratedTokens  int     `json:"generated_tokens"`
	PromptTokens     int     `json:"prompt_tokens"`
	OutputTokPerSec  float64 `json:"output_tok_per_s"`
	RequestsPerSec   float64 `json:"requests_per_s"`
	TTFTP50Ms        float64 `json:"ttft_p50_ms"`
	TTFTP99Ms        float64 `json:"ttft_p99_ms"`
	ITLP50Ms         float64 `json:"itl_p50_ms"`
	ITLP99Ms         float64 `json:"itl_p99_ms"`
	PerClientTokPerS float64 `json:"per_client_tok_per_s"`
}

type reqStats struct {
	ttft   time.Duration
	itls   []time.Duration
	tokens int
	prompt int
	err    error
}

// RunServeLoad measures each concurrency level in turn.
func RunServeLoad(ctx context.Context, o ServeOptions) ([]ServeResult, error) {
	if o.URL == "" {
		return nil, fmt.Errorf("bench serve: --url is required")
	}
	if o.Requests <= 0 {
		o.Requests = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	client := &http.Client{Timeout: o.Timeout}
	var out []ServeResult
	for _, c := range o.Clients {
		start := time.Now()
		stats := make([]reqStats, c*o.Requests)
		var wg sync.WaitGroup
		for k := 0; k < c; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				for r := 0; r < o.Requests; r++ {
					stats[k*o.Requests+r] = oneStream(ctx, client, o, k*o.Requests+r)
				}
			}(k)
		}
		wg.Wait()
		out = append(out, summarise(c, stats, time.Since(start)))
	}
	return out, nil
}

func oneStream(ctx context.Context, client *http.Client, o ServeOptions, seed int) reqStats {
	prompt := make([]int, o.PromptTokens)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range prompt {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		prompt[i] = 1000 + int(x%100000)
	}
	body, _ := json.Marshal(map[string]any{"model": o.Model, "prompt": prompt, "max_tokens": o.MaxTokens,
		"temperature": 0, "stream": true, "ignore_eos": true, "stream_options": map[string]any{"include_usage": true},
		// every token then comes in its own chunk, even one whose text is empty (a model folder
		// without a tokenizer, a token ending inside a UTF-8 sequence): TTFT and ITL stay per token
		"return_token_ids": true})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(o.URL, "/")+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return reqStats{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return reqStats{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return reqStats{err: fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))}
	}
	var st reqStats
	last := start
	done := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			done = true
			break
		}
		var chunk struct {
			Choices []struct {
				TokenIDs []int `json:"token_ids"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return reqStats{err: fmt.Errorf("bad chunk %q: %w", data, err)}
		}
		if chunk.Usage != nil {
			st.tokens, st.prompt = chunk.Usage.CompletionTokens, chunk.Usage.PromptTokens
		}
		if len(chunk.Choices) == 0 || len(chunk.Choices[0].TokenIDs) == 0 {
			continue /* the usage chunk, the closing finish_reason chunk */
		}
		now := time.Now()
		if st.ttft == 0 {
			st.ttft = now.Sub(start)
		} else {
			st.itls = append(st.itls, now.Sub(last))
		}
		last = now
	}
	if err := sc.Err(); err != nil {
		return reqStats{err: err}
	}
	if !done {
		return reqStats{err: fmt.Errorf("stream ended without [DONE]")}
	}
	if st.tokens != o.MaxTokens {
		st.err = fmt.Errorf("generated %d tokens, asked for %d", st.tokens, o.MaxTokens)
	}
	return st
}

func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

func summarise(clients int, stats []reqStats, wall time.Duration) ServeResult {
	r := ServeResult{Clients: clients, Requests: len(stats), WallS: wall.Seconds()}
	var ttfts, itls []time.Duration
	for _, s := range stats {
		if s.err != nil {
			r.Failed++
			if r.FirstError == "" {
				r.FirstError = s.err.Error()
			}
			continue
		}
		r.GeneratedTokens += s.tokens
		r.PromptTokens += s.prompt
		ttfts = append(ttfts, s.ttft)
		itls = append(itls, s.itls...)
	}
	r.OutputTokPerSec = float64(r.GeneratedTokens) / wall.Seconds()
	r.RequestsPerSec = float64(len(stats)-r.Failed) / wall.Seconds()
	r.PerClientTokPerS = r.OutputTokPerSec / float64(clients)
	r.TTFTP50Ms, r.TTFTP99Ms = percentile(ttfts, 0.5), percentile(ttfts, 0.99)
	r.ITLP50Ms, r.ITLP99Ms = percentile(itls, 0.5), percentile(itls, 0.99)
	return r
}

// ServeTable writes the results as a markdown table.
func ServeTable(w io.Writer, o ServeOptions, rs []ServeResult) {
	fmt.Fprintf(w, "| clients | requests | failed | prompt | output tok/s | req/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %d | %d+%d | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |\n", r.Clients, r.Requests,
			r.Failed, o.PromptTokens, o.MaxTokens, r.OutputTokPerSec, r.RequestsPerSec, r.TTFTP50Ms, r.TTFTP99Ms,
			r.ITLP50Ms, r.ITLP99Ms)
		if r.FirstError != "" {
			fmt.Fprintf(w, "\nfirst error at %d clients: %s\n", r.Clients, r.FirstError)
		}
	}
}
