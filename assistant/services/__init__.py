"""The use cases every front end shares, each in one place: `cli`, `api` and `ui` call these.

- `chat`: the thread-safe chat turn runner (session locks, concurrency cap, rate limits, metrics).
- `kb`: catalogue ingest (one ingest lock, upload staging) and text/photo search with the one
  photo-fusion default.
- `evidence`: evidence packs of turns, looked up and explained by id.
- `review`: whether a customer review's photo shows the product it reviews.
- `metrics`, `ratelimit`: the Prometheus metrics and the sliding-window limits they record into.
"""
