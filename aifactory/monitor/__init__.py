"""The monitor library: what the monitor service does, importable by anyone.

- :mod:`.exposition`: exposition text → the kept samples, grouped by label set (or why not);
- :mod:`.scrape`: one scrape of one URL, a failed one as data (never an exception);
- :mod:`.scheduler`: every target on its own loop, faster while a benchmark runs;
- :mod:`.targets`: a service's targets from the registry and its exporters files, and the
  Prometheus HTTP SD / ``file_sd`` target groups;
- :mod:`.follow`: a KV bucket followed live;
- :mod:`.window`: a time window of scrapes read back from the stream, and
  ``server_metrics.jsonl``;
- :mod:`.figures`: series, aggregates and live figures from scrape rows;
- :mod:`.benchmark`: a benchmark's run windows and its summary's server side;
- :mod:`.prometheus`: a real Prometheus configured on the stack's targets.
"""
