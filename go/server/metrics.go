package server

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deepgo/deepgo/go/engine"
)

// Prometheus text exposition (version 0.0.4) of the server's metrics, named like vLLM's
// (vllm:time_to_first_token_seconds -> deepgo_time_to_first_token_seconds), so existing
// dashboards need only the prefix changed. No client library: a few counters and histograms.

// Bucket bounds in seconds: vLLM's, with finer steps below 10 ms for fast CPU models.
var (
	ttftBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5,
		7.5, 10, 20, 40, 80, 160, 640, 2560}
	itlBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
		1, 2.5, 5, 7.5, 10, 20, 40, 80}
	e2eBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50,
		60, 120, 240, 480, 960, 1920, 7680}
)

type histogram struct {
	bounds []float64
	counts []uint64 // per bucket (not cumulative); the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(b []float64) *histogram {
	return &histogram{bounds: b, counts: make([]uint64, len(b)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v: le is inclusive
	h.counts[i]++
	h.sum += v
	h.n++
}

// metrics holds the counters; every method is safe for concurrent use.
type metrics struct {
	model string

	mu             sync.Mutex
	finished       map[string]uint64 // by finish reason
	promptTokens   uint64
	genTokens      uint64
	ttft, itl, e2e *histogram
	httpErrors     map[int]uint64
}

func newMetrics(model string) *metrics {
	return &metrics{model: model, finished: map[string]uint64{}, ttft: newHistogram(ttftBuckets),
		itl: newHistogram(itlBuckets), e2e: newHistogram(e2eBuckets), httpErrors: map[int]uint64{}}
}

func (m *metrics) addPrompt(n int) {
	m.mu.Lock()
	m.promptTokens += uint64(n)
	m.mu.Unlock()
}

func (m *metrics) httpError(status int) {
	m.mu.Lock()
	m.httpErrors[status]++
	m.mu.Unlock()
}

// tracker follows one request's events: per choice, the first token's latency, the gaps
// between tokens and the end-to-end time.
type tracker struct {
	m         *metrics
	submitted time.Time
	last      []time.Time
}

func (m *metrics) track(st *engine.Stream) *tracker {
	n := 0
	for _, p := range st.PromptTokens {
		n += p
	}
	m.addPrompt(n)
	return &tracker{m: m, submitted: st.Submitted, last: make([]time.Time, st.Choices)}
}

func (t *tracker) observe(ev engine.Event) {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.HasToken {
		m.genTokens++
		if prev := t.last[ev.Index]; prev.IsZero() {
			m.ttft.observe(ev.At.Sub(t.submitted).Seconds())
		} else {
			m.itl.observe(ev.At.Sub(prev).Seconds())
		}
		t.last[ev.Index] = ev.At
	}
	if ev.Finish != "" {
		m.finished[string(ev.Finish)]++
		m.e2e.observe(ev.At.Sub(t.submitted).Seconds())
	}
}

func promFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// write renders every metric; sched may be nil while the model loads.
func (m *metrics) write(w io.Writer, sched *engine.Scheduler) {
	lbl := `model_name="` + escapeLabel(m.model) + `"`
	head := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	var st engine.SchedulerStats
	if sched != nil {
		st = sched.Stats()
	}
	head("deepgo_num_requests_running", "gauge", "Number of sequences in the model's batch.")
	fmt.Fprintf(w, "deepgo_num_requests_running{%s} %d\n", lbl, st.Running)
	head("deepgo_num_requests_waiting", "gauge", "Number of sequences waiting for admission.")
	fmt.Fprintf(w, "deepgo_num_requests_waiting{%s} %d\n", lbl, st.Waiting)
	head("deepgo_kv_cache_usage_perc", "gauge", "KV-cache usage: fraction of blocks in use (1 = full).")
	fmt.Fprintf(w, "deepgo_kv_cache_usage_perc{%s} %s\n", lbl, promFloat(st.KVUsage()))
	head("deepgo_kv_cache_blocks", "gauge", "KV-cache blocks in the pool.")
	fmt.Fprintf(w, "deepgo_kv_cache_blocks{%s} %d\n", lbl, st.TotalBlocks)
	head("deepgo_kv_cache_free_blocks", "gauge", "KV-cache blocks not held by any sequence.")
	fmt.Fprintf(w, "deepgo_kv_cache_free_blocks{%s} %d\n", lbl, st.FreeBlocks)
	head("deepgo_num_preemptions_total", "counter", "Cumulative number of preemptions (recompute).")
	fmt.Fprintf(w, "deepgo_num_preemptions_total{%s} %d\n", lbl, st.Preemptions)
	head("deepgo_device_picked_tokens_total", "counter", "Cumulative number of greedy tokens picked on the device (only the id downloaded, not the logits).")
	fmt.Fprintf(w, "deepgo_device_picked_tokens_total{%s} %d\n", lbl, st.DevicePicks)
	head("deepgo_engine_steps_total", "counter", "Forward steps run by the scheduler.")
	fmt.Fprintf(w, "deepgo_engine_steps_total{%s} %d\n", lbl, st.Steps)

	m.mu.Lock()
	defer m.mu.Unlock()
	head("deepgo_request_success_total", "counter", "Count of finished sequences by finish reason.")
	reasons := []string{"stop", "length", "abort"}
	for r := range m.finished {
		if r != "stop" && r != "length" && r != "abort" {
			reasons = append(reasons, r)
		}
	}
	for _, r := range reasons {
		fmt.Fprintf(w, "deepgo_request_success_total{%s,finished_reason=\"%s\"} %d\n", lbl, escapeLabel(r), m.finished[r])
	}
	head("deepgo_prompt_tokens_total", "counter", "Number of prefill tokens processed.")
	fmt.Fprintf(w, "deepgo_prompt_tokens_total{%s} %d\n", lbl, m.promptTokens)
	head("deepgo_generation_tokens_total", "counter", "Number of generation tokens processed.")
	fmt.Fprintf(w, "deepgo_generation_tokens_total{%s} %d\n", lbl, m.genTokens)
	hist := func(name, help string, h *histogram) {
		head(name, "histogram", help)
		var cum uint64
		for i, b := range h.bounds {
			cum += h.counts[i]
			fmt.Fprintf(w, "%s_bucket{%s,le=\"%s\"} %d\n", name, lbl, promFloat(b), cum)
		}
		cum += h.counts[len(h.bounds)]
		fmt.Fprintf(w, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, lbl, cum)
		fmt.Fprintf(w, "%s_sum{%s} %s\n", name, lbl, promFloat(h.sum))
		fmt.Fprintf(w, "%s_count{%s} %d\n", name, lbl, h.n)
	}
	hist("deepgo_time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft)
	hist("deepgo_inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m.itl)
	hist("deepgo_e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", m.e2e)
	head("deepgo_http_errors_total", "counter", "HTTP error responses by status code.")
	codes := make([]int, 0, len(m.httpErrors))
	for c := range m.httpErrors {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "deepgo_http_errors_total{%s,code=\"%d\"} %d\n", lbl, c, m.httpErrors[c])
	}
}
