-- wrk script: POST one streamed chat completion per request (used by bench/simulator_wrk.py).
-- wrk counts a request when the chunked body ends, i.e. after "data: [DONE]".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "text/event-stream"
wrk.body = '{"model":"simulator","messages":[{"role":"user","content":"Say hello to the benchmark."}],'
  .. '"stream":true,"max_tokens":16,"stream_options":{"include_usage":true}}'
