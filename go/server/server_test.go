package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/engine"
	"github.com/deepgo/deepgo/go/sampling"
	"github.com/deepgo/deepgo/go/tokenizer"
)

func TestHealthUntilLoaded(t *testing.T) {
	s := New(Config{ModelName: "m"})
	hs := httptest.NewServer(s)
	defer hs.Close()
	code, body := get(t, hs.URL+"/health")
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", body)
	code, body = post(t, hs.URL+"/v1/completions", `{"prompt":[1,2]}`)
	requireError(t, code, body, http.StatusServiceUnavailable, "")
	code, body = get(t, hs.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), "deepgo_num_requests_running")

	ts := fixtureServer(t, serverOpts{})
	code, body = get(t, ts.URL+"/health")
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, body = get(t, ts.URL+"/v1/models")
	require.Equal(t, http.StatusOK, code)
	ml := decode[ModelList](t, body)
	require.Equal(t, "list", ml.Object)
	require.Equal(t, "test-model", ml.Data[0].ID)
	require.Equal(t, "model", ml.Data[0].Object)
	code, _ = get(t, ts.URL+"/v1/models/test-model")
	require.Equal(t, http.StatusOK, code)
	code, body = get(t, ts.URL+"/v1/models/other")
	require.Equal(t, "model_not_found", requireError(t, code, body, http.StatusNotFound, "model")["code"])
}

func TestCompletionsTokenPromptMatchesReference(t *testing.T) {
	ts := fixtureServer(t, serverOpts{})
	code, body := post(t, ts.URL+"/v1/completions", map[string]any{"model": "test-model", "prompt": fixturePrompt,
		"max_tokens": 8, "temperature": 0, "ignore_eos": true, "return_token_ids": true})
	require.Equal(t, http.StatusOK, code, "%s", body)
	var c struct {
		Completion
		Choices []struct {
			CompletionChoice
			TokenIDs []int `json:"token_ids"`
		} `json:"choices"`
		Usage Usage `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(body, &c))
	require.Equal(t, "text_completion", c.Object)
	require.True(t, strings.HasPrefix(c.ID, "cmpl-"))
	require.Equal(t, "test-model", c.Model)
	require.Len(t, c.Choices, 1)
	require.Equal(t, fixtureGreedy, c.Choices[0].TokenIDs) // transformers' greedy continuation
	require.Equal(t, "length", *c.Choices[0].FinishReason)
	require.Equal(t, Usage{PromptTokens: 12, CompletionTokens: 8, TotalTokens: 20}, c.Usage)

	// Several prompts (arrays of ids) and n: choices prompt-major; usage counts prompts once.
	code, body = post(t, ts.URL+"/v1/completions", map[string]any{"prompt": [][]int{fixturePrompt, {5, 6, 7}},
		"n": 2, "max_tokens": 3, "temperature": 0, "ignore_eos": true, "return_token_ids": true})
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &c))
	require.Len(t, c.Choices, 4)
	for k, ch := range c.Choices {
		require.Equal(t, k, ch.Index)
		require.Len(t, ch.TokenIDs, 3)
	}
	require.Equal(t, fixtureGreedy[:3], c.Choices[0].TokenIDs)
	require.Equal(t, fixtureGreedy[:3], c.Choices[1].TokenIDs) // greedy: n copies agree
	require.Equal(t, 15, c.Usage.PromptTokens)
	require.Equal(t, 12, c.Usage.CompletionTokens)

	// Completions logprobs (legacy shape).
	code, body = post(t, ts.URL+"/v1/completions", map[string]any{"prompt": fixturePrompt, "max_tokens": 4,
		"temperature": 0, "ignore_eos": true, "logprobs": 3})
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &c))
	lp := c.Choices[0].Logprobs
	require.NotNil(t, lp)
	require.Equal(t, []string{"token_id:11", "token_id:28", "token_id:28", "token_id:240"}, lp.Tokens)
	require.Len(t, lp.TokenLogprobs, 4)
	require.Len(t, lp.TopLogprobs, 4)
	require.Len(t, lp.TextOffset, 4)
	for i, top := range lp.TopLogprobs {
		require.Len(t, top, 3)
		require.LessOrEqual(t, lp.TokenLogprobs[i], float32(0))
		require.InDelta(t, lp.TokenLogprobs[i], top[lp.Tokens[i]], 1e-6) // greedy: the best one
	}
}

// expectChat is what `deepgo generate --chat` prints: the chat template over one user
// message, tokenised without BOS, greedy through engine.Generate.
func expectChat(t *testing.T, user string, maxTokens int) (string, int) {
	eng := refEngine(t)
	text, err := eng.Tok.ApplyChatTemplate([]map[string]any{{"role": "user", "content": user}},
		tokenizer.TemplateOptions{AddGenerationPrompt: true})
	require.NoError(t, err)
	ids := eng.Tok.Encode(text, false)
	prompt := make([]int32, len(ids))
	for i, v := range ids {
		prompt[i] = int32(v)
	}
	p := sampling.DefaultParams()
	p.Temperature, p.MaxTokens = 0, maxTokens
	var b strings.Builder
	_, err = eng.Generate(context.Background(), prompt, p, func(tk engine.Token) bool {
		b.WriteString(tk.Text)
		return true
	})
	require.NoError(t, err)
	return b.String(), len(prompt)
}

func TestChatGreedyMatchesGenerateAndStreams(t *testing.T) {
	ts := sharedTiny(t)
	want, promptLen := expectChat(t, "Hello there, how are you?", 12)
	want2, _ := expectChat(t, "Tell me a story", 12)
	require.NotEmpty(t, want)

	req := map[string]any{"model": "test-model", "messages": []map[string]any{{"role": "user",
		"content": "Hello there, how are you?"}}, "temperature": 0, "max_tokens": 12}
	code, body := post(t, ts.URL+"/v1/chat/completions", req)
	require.Equal(t, http.StatusOK, code, "%s", body)
	c := decode[ChatCompletion](t, body)
	require.Equal(t, "chat.completion", c.Object)
	require.True(t, strings.HasPrefix(c.ID, "chatcmpl-"))
	require.Len(t, c.Choices, 1)
	require.Equal(t, "assistant", c.Choices[0].Message.Role)
	require.Equal(t, want, str(c.Choices[0].Message.Content))
	require.Equal(t, promptLen, c.Usage.PromptTokens)
	require.Greater(t, metricValue(t, ts.URL, "deepgo_device_picked_tokens_total"), 0.0, "greedy tokens picked on the device")
	require.Contains(t, []string{"stop", "length"}, c.Choices[0].FinishReason)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(body, &raw))
	ch0 := raw["choices"].([]any)[0].(map[string]any)
	require.Contains(t, ch0, "logprobs") // null, as OpenAI sends it
	require.Nil(t, ch0["logprobs"])

	// Content as an array of text parts renders the same prompt.
	req2 := map[string]any{"messages": []map[string]any{{"role": "user", "content": []map[string]any{
		{"type": "text", "text": "Tell me "}, {"type": "text", "text": "a story"}}}}, "temperature": 0, "max_tokens": 12}
	code, body = post(t, ts.URL+"/v1/chat/completions", req2)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Equal(t, want2, str(decode[ChatCompletion](t, body).Choices[0].Message.Content))

	// Streaming: the same text, in OpenAI's chunk sequence.
	req["stream"] = true
	req["stream_options"] = map[string]any{"include_usage": true}
	code, body = post(t, ts.URL+"/v1/chat/completions", req)
	require.Equal(t, http.StatusOK, code, "%s", body)
	evs := sseEvents(t, body)
	require.Equal(t, "[DONE]", evs[len(evs)-1])
	var chunks []map[string]any
	for _, e := range evs[:len(evs)-1] {
		chunks = append(chunks, decode[map[string]any](t, []byte(e)))
	}
	first := chunks[0]
	require.Equal(t, "chat.completion.chunk", first["object"])
	require.Contains(t, first, "usage")
	require.Nil(t, first["usage"]) // null on every chunk with include_usage
	d0 := first["choices"].([]any)[0].(map[string]any)
	require.Equal(t, map[string]any{"role": "assistant", "content": ""}, d0["delta"])
	require.Nil(t, d0["finish_reason"])
	var text strings.Builder
	id := first["id"]
	for _, ch := range chunks[1 : len(chunks)-2] {
		require.Equal(t, id, ch["id"])
		c := ch["choices"].([]any)[0].(map[string]any)
		require.Nil(t, c["finish_reason"])
		text.WriteString(c["delta"].(map[string]any)["content"].(string))
	}
	require.Equal(t, want, text.String())
	fin := chunks[len(chunks)-2]["choices"].([]any)[0].(map[string]any)
	require.Equal(t, map[string]any{}, fin["delta"])
	require.Contains(t, []any{"stop", "length"}, fin["finish_reason"])
	last := chunks[len(chunks)-1]
	require.Equal(t, []any{}, last["choices"])
	u := last["usage"].(map[string]any)
	require.Equal(t, float64(promptLen), u["prompt_tokens"])
	require.Equal(t, u["prompt_tokens"].(float64)+u["completion_tokens"].(float64), u["total_tokens"])

	// Chat logprobs in OpenAI's shape.
	code, body = post(t, ts.URL+"/v1/chat/completions", map[string]any{"messages": req["messages"], "max_tokens": 4,
		"logprobs": true, "top_logprobs": 2, "seed": 3, "ignore_eos": true})
	require.Equal(t, http.StatusOK, code, "%s", body)
	c = decode[ChatCompletion](t, body)
	require.NotNil(t, c.Choices[0].Logprobs)
	require.Len(t, c.Choices[0].Logprobs.Content, 4)
	for _, e := range c.Choices[0].Logprobs.Content {
		require.LessOrEqual(t, e.Logprob, float32(0))
		require.Len(t, e.TopLogprobs, 2)
		require.Equal(t, []byte(e.Token), bytesOf(e.Bytes))
	}
	// A seed makes sampling reproducible; n > 1 gives n choices.
	sreq := map[string]any{"messages": req["messages"], "max_tokens": 6, "seed": 11, "temperature": 1, "n": 3}
	_, b1 := post(t, ts.URL+"/v1/chat/completions", sreq)
	_, b2 := post(t, ts.URL+"/v1/chat/completions", sreq)
	c1, c2 := decode[ChatCompletion](t, b1), decode[ChatCompletion](t, b2)
	require.Len(t, c1.Choices, 3)
	for k := range 3 {
		require.Equal(t, str(c1.Choices[k].Message.Content), str(c2.Choices[k].Message.Content))
	}
}

func bytesOf(v []int) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

func TestStopStrings(t *testing.T) {
	ts := sharedTiny(t)
	full, _ := expectChat(t, "Hello", 16)
	require.Greater(t, len(full), 6)
	// Stop at a piece of the greedy output: the text ends just before it, finish "stop".
	stop := full[3:6]
	code, body := post(t, ts.URL+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user",
		"content": "Hello"}}, "max_tokens": 16, "temperature": 0, "stop": []string{stop, "never-appears"}})
	require.Equal(t, http.StatusOK, code, "%s", body)
	c := decode[ChatCompletion](t, body)
	got := str(c.Choices[0].Message.Content)
	require.Equal(t, full[:strings.Index(full, stop)], got)
	require.Equal(t, "stop", c.Choices[0].FinishReason)
}

func TestValidationErrors(t *testing.T) {
	ts := sharedTiny(t)
	msgs := []map[string]any{{"role": "user", "content": "hi"}}
	long := strings.Repeat("word ", 300)
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		param      string
		code       string
	}{
		{"malformed json", "chat/completions", `{"messages": [`, 400, "", ""},
		{"empty body", "chat/completions", ``, 400, "", ""},
		{"not an object", "chat/completions", `[1,2]`, 400, "", ""},
		{"missing messages", "chat/completions", map[string]any{"model": "test-model"}, 400, "messages", ""},
		{"empty messages", "chat/completions", map[string]any{"messages": []any{}}, 400, "messages", ""},
		{"messages not array", "chat/completions", map[string]any{"messages": "hi"}, 400, "messages", ""},
		{"bad role", "chat/completions", map[string]any{"messages": []map[string]any{{"role": "robot", "content": "x"}}}, 400, "messages[0].role", ""},
		{"role not string", "chat/completions", map[string]any{"messages": []map[string]any{{"role": 5, "content": "x"}}}, 400, "messages[0].role", ""},
		{"image part", "chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": []map[string]any{{"type": "image_url"}}}}}, 400, "messages[0].content[0].type", ""},
		{"temperature type", "chat/completions", map[string]any{"messages": msgs, "temperature": "hot"}, 400, "temperature", ""},
		{"temperature range", "chat/completions", map[string]any{"messages": msgs, "temperature": 3}, 400, "temperature", ""},
		{"top_p range", "chat/completions", map[string]any{"messages": msgs, "top_p": 0}, 400, "top_p", ""},
		{"max_tokens type", "chat/completions", map[string]any{"messages": msgs, "max_tokens": "5"}, 400, "max_tokens", ""},
		{"max_tokens fraction", "chat/completions", map[string]any{"messages": msgs, "max_tokens": 2.5}, 400, "max_tokens", ""},
		{"max_tokens zero", "chat/completions", map[string]any{"messages": msgs, "max_tokens": 0}, 400, "max_tokens", ""},
		{"max_completion_tokens", "chat/completions", map[string]any{"messages": msgs, "max_completion_tokens": -1}, 400, "max_completion_tokens", ""},
		{"n zero", "chat/completions", map[string]any{"messages": msgs, "n": 0}, 400, "n", ""},
		{"n huge", "chat/completions", map[string]any{"messages": msgs, "n": 1000}, 400, "n", ""},
		{"stop type", "chat/completions", map[string]any{"messages": msgs, "stop": 5}, 400, "stop", ""},
		{"stop empty", "chat/completions", map[string]any{"messages": msgs, "stop": ""}, 400, "stop", ""},
		{"stream type", "chat/completions", map[string]any{"messages": msgs, "stream": "yes"}, 400, "stream", ""},
		{"seed type", "chat/completions", map[string]any{"messages": msgs, "seed": "x"}, 400, "seed", ""},
		{"penalty range", "chat/completions", map[string]any{"messages": msgs, "presence_penalty": 5}, 400, "presence_penalty", ""},
		{"top_logprobs alone", "chat/completions", map[string]any{"messages": msgs, "top_logprobs": 2}, 400, "top_logprobs", ""},
		{"top_logprobs range", "chat/completions", map[string]any{"messages": msgs, "logprobs": true, "top_logprobs": 21}, 400, "top_logprobs", ""},
		{"logprobs type", "chat/completions", map[string]any{"messages": msgs, "logprobs": 3}, 400, "logprobs", ""},
		{"min_tokens over max", "chat/completions", map[string]any{"messages": msgs, "min_tokens": 9, "max_tokens": 3}, 400, "min_tokens", ""},
		{"unknown model", "chat/completions", map[string]any{"model": "gpt-4", "messages": msgs}, 404, "model", "model_not_found"},
		{"model type", "chat/completions", map[string]any{"model": 4, "messages": msgs}, 400, "model", ""},
		{"prompt too long", "chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": long}}}, 400, "messages", "context_length_exceeded"},
		{"prompt plus max_tokens too long", "completions", map[string]any{"prompt": "hello", "max_tokens": 300}, 400, "prompt", "context_length_exceeded"},
		{"missing prompt", "completions", map[string]any{"max_tokens": 3}, 400, "prompt", ""},
		{"prompt type", "completions", map[string]any{"prompt": 5}, 400, "prompt", ""},
		{"prompt mixed", "completions", map[string]any{"prompt": []any{"a", 1}}, 400, "prompt", ""},
		{"prompt empty array", "completions", map[string]any{"prompt": []any{}}, 400, "prompt", ""},
		{"token out of vocab", "completions", map[string]any{"prompt": []int{1, 999999}}, 400, "prompt", ""},
		{"completions logprobs range", "completions", map[string]any{"prompt": "hi", "logprobs": 50}, 400, "logprobs", ""},
		{"stop_token_ids range", "completions", map[string]any{"prompt": "hi", "stop_token_ids": []int{-1}}, 400, "stop_token_ids", ""},
		{"logit_bias", "chat/completions", map[string]any{"messages": msgs, "logit_bias": map[string]int{"5": 10}}, 400, "logit_bias", ""},
		{"tools", "chat/completions", map[string]any{"messages": msgs, "tools": []map[string]any{{"type": "function"}}}, 400, "tools[0].function.name", ""},
		{"tools on completions", "completions", map[string]any{"prompt": "hi", "tools": []map[string]any{{"type": "function"}}}, 400, "tools", ""},
		{"tool_choice unknown", "chat/completions", map[string]any{"messages": msgs, "tool_choice": "sometimes"}, 400, "tool_choice", ""},
		{"response_format unknown", "chat/completions", map[string]any{"messages": msgs, "response_format": map[string]any{"type": "yaml"}}, 400, "response_format", ""},
		{"min_tokens with json", "chat/completions", map[string]any{"messages": msgs, "min_tokens": 2, "response_format": map[string]any{"type": "json_object"}}, 400, "min_tokens", ""},
		{"json_schema without schema", "chat/completions", map[string]any{"messages": msgs, "response_format": map[string]any{"type": "json_schema"}}, 400, "response_format", ""},
		{"user type", "chat/completions", map[string]any{"messages": msgs, "user": 5}, 400, "user", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, ts.URL+"/v1/"+tc.path, tc.body)
			e := requireError(t, code, body, tc.status, tc.param)
			require.Equal(t, "invalid_request_error", e["type"])
			if tc.code != "" {
				require.Equal(t, tc.code, e["code"])
			}
		})
	}
	// Wrong method, unknown route: still error objects.
	code, body := get(t, ts.URL+"/v1/chat/completions")
	requireError(t, code, body, http.StatusMethodNotAllowed, "")
	code, body = get(t, ts.URL+"/v1/nothing")
	requireError(t, code, body, http.StatusNotFound, "")
	// The server still works.
	code, body = post(t, ts.URL+"/v1/chat/completions", map[string]any{"messages": msgs, "max_tokens": 2})
	require.Equal(t, http.StatusOK, code, "%s", body)
}

func TestNoTokenizer(t *testing.T) {
	ts := fixtureServer(t, serverOpts{})
	code, body := post(t, ts.URL+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": "x"}}})
	require.Contains(t, requireError(t, code, body, 400, "messages")["message"], "no tokenizer")
	code, body = post(t, ts.URL+"/v1/completions", map[string]any{"prompt": "text"})
	requireError(t, code, body, 400, "prompt")
}

func TestAuthCORSAndBodyLimit(t *testing.T) {
	ts := fixtureServer(t, serverOpts{cfg: Config{APIKey: "sekret", CORSOrigin: "http://app.example", MaxBodyBytes: 512}})
	body := map[string]any{"prompt": []int{5, 6}, "max_tokens": 2}
	code, b := post(t, ts.URL+"/v1/completions", body)
	require.Equal(t, "invalid_api_key", requireError(t, code, b, http.StatusUnauthorized, "")["code"])
	code, b = post(t, ts.URL+"/v1/completions", body, "Authorization", "Bearer wrong")
	requireError(t, code, b, http.StatusUnauthorized, "")
	code, b = post(t, ts.URL+"/v1/completions", body, "Authorization", "Bearer sekret")
	require.Equal(t, http.StatusOK, code, "%s", b)
	code, _ = get(t, ts.URL+"/health") // health and metrics need no key
	require.Equal(t, http.StatusOK, code)

	// CORS preflight (no key needed) and the header on a real response.
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/v1/chat/completions", nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "http://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	require.Equal(t, "authorization, content-type", resp.Header.Get("Access-Control-Allow-Headers"))
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/v1/models", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Authorization", "Bearer sekret")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	// Body limit: 413 with an error object.
	big := `{"prompt": [` + strings.Repeat("5,", 400) + `5]}`
	code, b = post(t, ts.URL+"/v1/completions", big, "Authorization", "Bearer sekret")
	require.Equal(t, "request_too_large", requireError(t, code, b, http.StatusRequestEntityTooLarge, "")["code"])
}

func TestQueueFullIs429(t *testing.T) {
	ts := fixtureServer(t, serverOpts{maxQueue: 2})
	code, b := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": []int{5, 6}, "n": 3, "max_tokens": 2})
	e := requireError(t, code, b, http.StatusTooManyRequests, "")
	require.Equal(t, "rate_limit_exceeded", e["code"])
}

// panicBody panics when read: the handler's recovery answers 500 and the server lives on.
type panicBody struct{}

func (panicBody) Read([]byte) (int, error) { panic("boom") }
func (panicBody) Close() error             { return nil }

func TestPanicRecovered(t *testing.T) {
	ts := fixtureServer(t, serverOpts{})
	req := httptest.NewRequest(http.MethodPost, "/v1/completions", io.NopCloser(panicBody{}))
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	requireError(t, rec.Code, rec.Body.Bytes(), http.StatusInternalServerError, "")
	code, _ := get(t, ts.URL+"/health")
	require.Equal(t, http.StatusOK, code)
}

func TestCancelledStreamFreesPages(t *testing.T) {
	// The tiny DeepSeek-V3-shaped model takes milliseconds per token: 200 would take seconds.
	ts := startServer(t, serverOpts{model: tinyModel(t), ctx: 256, batch: 2, kv: engine.CacheConfig{BlockSize: 16}})
	ctx, cancel := context.WithCancel(context.Background())
	js, _ := json.Marshal(map[string]any{"prompt": "Once upon a time", "max_tokens": 200, "stream": true,
		"ignore_eos": true})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/completions", strings.NewReader(string(js)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	buf := make([]byte, 1)
	_, err = resp.Body.Read(buf) // the stream has started
	require.NoError(t, err)
	require.Greater(t, metricValue(t, ts.URL, "deepgo_kv_cache_usage_perc"), 0.0)
	cancel()
	resp.Body.Close()
	waitMetric(t, ts.URL, "deepgo_kv_cache_usage_perc", 0)
	waitMetric(t, ts.URL, "deepgo_num_requests_running", 0)
	require.Equal(t, ts.Eng.Model.KV.NumBlocks, ts.Sched.Stats().FreeBlocks)
	// Counted as aborted.
	require.Eventually(t, func() bool {
		_, m := get(t, ts.URL+"/metrics")
		return strings.Contains(string(m), `deepgo_request_success_total{model_name="test-model",finished_reason="abort"} 1`)
	}, 5*time.Second, 5*time.Millisecond, "%s", func() string { _, m := get(t, ts.URL+"/metrics"); return string(m) }())
}

func TestShutdownDrains(t *testing.T) {
	ts := fixtureServer(t, serverOpts{})
	type result struct {
		code int
		body []byte
	}
	done := make(chan result, 1)
	go func() {
		js, _ := json.Marshal(map[string]any{"prompt": fixturePrompt, "max_tokens": 6, "stream": true, "ignore_eos": true})
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(string(js)))
		if err != nil {
			done <- result{0, []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, b}
	}()
	require.Eventually(t, func() bool { return ts.Sched.Stats().Running > 0 || ts.Sched.Stats().Steps > 0 },
		5*time.Second, time.Millisecond)
	ts.Drain()
	code, b := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": []int{5}})
	requireError(t, code, b, http.StatusServiceUnavailable, "")
	code, _ = get(t, ts.URL+"/health")
	require.Equal(t, http.StatusServiceUnavailable, code)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ts.Sched.Shutdown(ctx)) // the running request finishes
	r := <-done
	require.Equal(t, http.StatusOK, r.code)
	evs := sseEvents(t, r.body)
	last := decode[Completion](t, []byte(evs[len(evs)-2]))
	require.Equal(t, "length", *last.Choices[0].FinishReason)

	// A request still running at the deadline ends with an error event, then [DONE]. Steps of
	// 20 ms keep it running (60 tokens of the fixture model alone can finish before Shutdown).
	ts2 := fixtureServer(t, serverOpts{before: func() { time.Sleep(20 * time.Millisecond) }})
	go func() {
		js, _ := json.Marshal(map[string]any{"prompt": []int{5, 6}, "max_tokens": 60, "stream": true, "ignore_eos": true})
		resp, err := http.Post(ts2.URL+"/v1/completions", "application/json", strings.NewReader(string(js)))
		if err != nil {
			done <- result{0, []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, b}
	}()
	require.Eventually(t, func() bool { return ts2.Sched.Stats().Steps > 1 }, 5*time.Second, time.Millisecond)
	ts2.Drain()
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	require.ErrorIs(t, ts2.Sched.Shutdown(expired), context.Canceled)
	r = <-done
	evs = sseEvents(t, r.body)
	require.Contains(t, evs[len(evs)-2], `"error"`)
	require.Contains(t, evs[len(evs)-2], "shut down")
}

func TestCompletionsEchoAndDefaultLength(t *testing.T) {
	ts := sharedTiny(t)
	code, body := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": "Once upon a time", "echo": true,
		"max_tokens": 3, "temperature": 0})
	require.Equal(t, http.StatusOK, code, "%s", body)
	c := decode[Completion](t, body)
	require.True(t, strings.HasPrefix(c.Choices[0].Text, "Once upon a time"), c.Choices[0].Text)
	// No max_tokens: 16 (OpenAI's default), cut to what the context leaves.
	code, body = post(t, ts.URL+"/v1/completions", map[string]any{"prompt": "Hi", "ignore_eos": true})
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Equal(t, 16, decode[ChatCompletion](t, body).Usage.CompletionTokens)
	long := make([]int, 252)
	for i := range long {
		long[i] = 100 + i
	}
	code, body = post(t, ts.URL+"/v1/completions", map[string]any{"prompt": long, "ignore_eos": true})
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Equal(t, 4, decode[ChatCompletion](t, body).Usage.CompletionTokens)
}

// TestPreemptionThroughServer: a KV pool of one context for four concurrent requests; the
// newest are preempted and recomputed, every request still gets all its tokens, the greedy
// ids are those of an uninterrupted run, and the pool is whole at the end.
func TestPreemptionThroughServer(t *testing.T) {
	// The first step waits until all four requests are queued: otherwise a fast model can finish
	// one before the next arrives, and nothing is preempted.
	var sched atomic.Pointer[engine.Scheduler]
	var once sync.Once
	hold := func() {
		once.Do(func() {
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
				if s := sched.Load(); s != nil && s.Stats().Waiting >= 4 {
					return
				}
			}
		})
	}
	ts := fixtureServer(t, serverOpts{batch: 4, kv: engine.CacheConfig{Blocks: 4, BlockSize: 16}, before: hold})
	sched.Store(ts.Sched)
	type res struct {
		ids  []int
		code int
		body []byte
	}
	out := make(chan res, 4)
	for i := range 4 {
		go func() {
			prompt := append([]int{}, fixturePrompt...)
			prompt[1] += i
			code, body := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": prompt, "max_tokens": 30,
				"temperature": 0, "ignore_eos": true, "return_token_ids": true})
			var c struct {
				Choices []struct {
					TokenIDs []int `json:"token_ids"`
				} `json:"choices"`
			}
			_ = json.Unmarshal(body, &c)
			r := res{code: code, body: body}
			if len(c.Choices) == 1 {
				r.ids = c.Choices[0].TokenIDs
			}
			out <- r
		}()
	}
	for range 4 {
		r := <-out
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.Len(t, r.ids, 30)
	}
	require.Greater(t, metricValue(t, ts.URL, "deepgo_num_preemptions_total"), 0.0)
	waitMetric(t, ts.URL, "deepgo_kv_cache_usage_perc", 0)
	// The first prompt's continuation is still transformers' greedy one.
	code, body := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": fixturePrompt, "max_tokens": 8,
		"temperature": 0, "ignore_eos": true, "return_token_ids": true})
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"token_ids":[11,28,28,240,221,56,56,138]`)
}

// TestNoServerErrorForAnyFieldType sets every request field, in turn, to values of every JSON
// type: the answer is a 200 or a 4xx with an error object, never a 5xx.
func TestNoServerErrorForAnyFieldType(t *testing.T) {
	ts := fixtureServer(t, serverOpts{})
	values := []string{`null`, `true`, `0`, `-1`, `1.5`, `1e400`, `"s"`, `""`, `[]`, `{}`, `[1]`, `["a"]`, `[[1,2]]`,
		`{"a":1}`, `99999999999999999999`}
	base := map[string]string{"model": `"test-model"`, "prompt": `[5,6,7]`, "max_tokens": `2`, "ignore_eos": `true`}
	keys := []string{"model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
		"n", "stop", "seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "stream",
		"stream_options", "user", "top_k", "min_p", "repetition_penalty", "min_tokens", "ignore_eos", "echo",
		"return_token_ids", "stop_token_ids", "logit_bias", "response_format", "best_of", "tools", "tool_choice",
		"chat_template_kwargs", "thinking"}
	for _, path := range []string{"/v1/completions", "/v1/chat/completions"} {
		for _, k := range keys {
			for _, v := range values {
				var b strings.Builder
				b.WriteString("{")
				for bk, bv := range base {
					if bk != k {
						b.WriteString(`"` + bk + `":` + bv + `,`)
					}
				}
				b.WriteString(`"` + k + `":` + v + `}`)
				code, body := post(t, ts.URL+path, b.String())
				if code >= 500 {
					t.Fatalf("%s %s: %d %s", path, b.String(), code, body)
				}
				if code != http.StatusOK {
					requireError(t, code, body, code, "")
				}
			}
		}
	}
}
