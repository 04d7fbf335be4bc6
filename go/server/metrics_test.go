package server

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/engine"
)

// TestMetricsExposition checks the text format: HELP/TYPE before samples, cumulative buckets
// ending at +Inf equal to _count, and the vLLM-style names.
func TestMetricsExposition(t *testing.T) {
	m := newMetrics(`we"ird`)
	st := &engine.Stream{Submitted: time.Unix(100, 0), PromptTokens: []int{5}, Choices: 1}
	tr := m.track(st)
	for i, d := range []time.Duration{3 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond} {
		ev := engine.Event{HasToken: true, At: st.Submitted.Add(d)}
		if i == 2 {
			ev.Finish = "length"
		}
		tr.observe(ev)
	}
	var b strings.Builder
	m.write(&b, nil)
	text := b.String()
	for _, name := range []string{"deepgo_num_requests_running", "deepgo_num_requests_waiting",
		"deepgo_kv_cache_usage_perc", "deepgo_request_success_total", "deepgo_prompt_tokens_total",
		"deepgo_generation_tokens_total", "deepgo_time_to_first_token_seconds", "deepgo_inter_token_latency_seconds",
		"deepgo_e2e_request_latency_seconds", "deepgo_num_preemptions_total", "deepgo_device_picked_tokens_total"} {
		require.Contains(t, text, "# TYPE "+name+" ")
	}
	require.Contains(t, text, `deepgo_request_success_total{model_name="we\"ird",finished_reason="length"} 1`)
	require.Contains(t, text, `deepgo_prompt_tokens_total{model_name="we\"ird"} 5`)
	require.Contains(t, text, `deepgo_generation_tokens_total{model_name="we\"ird"} 3`)
	require.Contains(t, text, `deepgo_time_to_first_token_seconds_count{model_name="we\"ird"} 1`)
	require.Contains(t, text, `deepgo_inter_token_latency_seconds_count{model_name="we\"ird"} 2`)
	require.Contains(t, text, `deepgo_time_to_first_token_seconds_bucket{model_name="we\"ird",le="0.005"} 1`)
	require.Contains(t, text, `deepgo_time_to_first_token_seconds_bucket{model_name="we\"ird",le="0.002"} 0`)

	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)
	typed := map[string]bool{}
	last := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		mm := sample.FindStringSubmatch(line)
		require.NotNil(t, mm, "bad sample line %q", line)
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(mm[1], "_bucket"), "_sum"), "_count")
		require.True(t, typed[base] || typed[mm[1]], "sample before its TYPE: %q", line)
		v, err := strconv.ParseFloat(mm[3], 64)
		require.NoError(t, err, line)
		if strings.HasSuffix(mm[1], "_bucket") {
			require.GreaterOrEqual(t, v, last[mm[1]], "buckets not cumulative: %q", line)
			last[mm[1]] = v
		}
	}
}
