/* aifactory web page: live updates over Server-Sent Events.
 *
 * No inline script anywhere (the Content-Security-Policy forbids it): pages carry what this
 * file needs in data- attributes, and live data arrives as JSON over SSE. Everything shown
 * is set with textContent, never parsed as HTML, so a hostile service name, recipe value or
 * log line stays text.
 */
(function () {
  "use strict";

  var STATE_NAME = /^[a-z_]+$/;
  var MAX_LOG_LINES = 1000;
  var MAX_NOTES = 300;
  var MAX_POINTS = 3600; /* per chart: an hour of one-second windows */

  function setText(el, value) {
    if (el) el.textContent = value === null || value === undefined ? "" : String(value);
  }

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function localLink(href) {
    return typeof href === "string" && href.charAt(0) === "/" && href.charAt(1) !== "/";
  }

  function setState(container, value) {
    if (!container) return;
    var badge = container.classList.contains("state") ? container : container.querySelector(".state");
    if (!badge) {
      badge = document.createElement("span");
      container.replaceChildren(badge);
    }
    badge.className = "state" + (STATE_NAME.test(value) ? " state-" + value : "");
    badge.textContent = value;
  }

  function number(value, digits) {
    if (value === null || value === undefined || value === "") return "–";
    if (typeof value !== "number") return String(value);
    if (digits === undefined) return Number.isInteger(value) ? String(value) : value.toFixed(1);
    return value.toFixed(digits);
  }

  function status(text) {
    setText(document.getElementById("live-status"), text);
  }

  /* One EventSource; JSON data handed to handlers by event name. The browser reconnects by
     itself and sends Last-Event-ID, so the server replays what was missed. */
  function connect(url, handlers) {
    var source = new EventSource(url);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (event) {
        var data;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        handlers[name](data);
      });
    });
    source.addEventListener("reset", function () {
      window.location.reload();
    });
    source.addEventListener("open", function () {
      status("live");
    });
    source.addEventListener("error", function () {
      status(source.readyState === EventSource.CLOSED ? "disconnected: reload the page" : "reconnecting…");
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
    return source;
  }

  function eventsUrl() {
    var data = document.body.dataset;
    if (!data.events) return null;
    return data.events + (data.since ? "?since=" + encodeURIComponent(data.since) : "");
  }

  function findByData(parent, key, value) {
    var children = parent.children;
    for (var i = 0; i < children.length; i++) {
      if (children[i].dataset[key] === value) return children[i];
    }
    return null;
  }

  function addNote(note) {
    var list = document.getElementById("events");
    if (!list) return;
    var item = document.createElement("li");
    var at = document.createElement("time");
    var what = document.createElement("strong");
    var detail = document.createElement("span");
    at.textContent = note.at;
    what.textContent = note.what;
    detail.textContent = note.detail;
    item.append(at, " ", what, " ", detail);
    list.append(item);
    while (list.children.length > MAX_NOTES) list.firstElementChild.remove();
  }

  function fillRows(tbody, rows, keys) {
    tbody.replaceChildren();
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      keys.forEach(function (key) {
        var td = document.createElement("td");
        td.textContent = row[key];
        tr.append(td);
      });
      tbody.append(tr);
    });
  }

  /* -- services ------------------------------------------------------------------------- */

  function fillServiceRow(row, s) {
    setText(field(row, "recipe"), s.recipe);
    setState(field(row, "state"), s.state);
    setText(field(row, "job"), s.job);
    setText(field(row, "nodes"), s.nodes);
    setText(field(row, "endpoints"), s.endpoints.join(" "));
    setText(field(row, "reason"), s.reason);
    setText(field(row, "created"), s.created);
    var form = field(row, "actions").querySelector("form");
    if (form) form.hidden = s.terminal;
  }

  function servicesPage() {
    var tbody = document.querySelector("#services tbody");
    var template = document.getElementById("service-row");
    connect(eventsUrl(), {
      service: function (s) {
        var row = findByData(tbody, "serviceId", s.service_id);
        if (!row) {
          row = template.content.firstElementChild.cloneNode(true);
          row.dataset.serviceId = s.service_id;
          var path = "/services/" + encodeURIComponent(s.service_id);
          var link = field(row, "link");
          link.href = path;
          link.textContent = s.service_id;
          var form = field(row, "actions").querySelector("form");
          form.action = path + "/stop";
          form.querySelector("button").setAttribute("aria-label", "Stop " + s.service_id);
          tbody.prepend(row);
          document.getElementById("services-empty").hidden = true;
        }
        fillServiceRow(row, s);
      },
      removed: function (s) {
        var row = findByData(tbody, "serviceId", s.service_id);
        if (row) row.remove();
      },
    });
  }

  function servicePage() {
    var body = document.body;
    connect(eventsUrl(), {
      service: function (s) {
        setState(field(document, "state"), s.state);
        ["job", "nodes", "reason", "exit_code", "created", "started", "ready", "ended", "script_path", "output_path"].forEach(
          function (key) {
            setText(field(document, key), s[key]);
          }
        );
        var list = document.getElementById("endpoints");
        list.replaceChildren();
        s.endpoints.forEach(function (url) {
          var item = document.createElement("li");
          item.className = "mono";
          item.textContent = url;
          list.append(item);
        });
        document.getElementById("endpoints-empty").hidden = s.endpoints.length > 0;
        fillRows(document.querySelector("#job-history tbody"), s.job_history, ["at", "job_state", "reason"]);
        fillRows(document.querySelector("#history tbody"), s.history, ["at", "state", "job_state"]);
        document.getElementById("stop-form").hidden = s.terminal;
      },
      note: addNote,
    });
    if (body.dataset.logs && localLink(body.dataset.logs)) followLogs(body.dataset.logs);
    if (body.dataset.monitor && localLink(body.dataset.monitor)) followMonitor(body.dataset.monitor);
  }

  function followLogs(url) {
    var pre = document.getElementById("log");
    if (!pre) return;
    function append(text) {
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(document.createTextNode(text + "\n"));
      while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    var source = connect(url, {
      lines: function (batch) {
        var prefix = batch.stream === "err" ? "[err] " : "";
        batch.lines.forEach(function (line) {
          append(prefix + line);
        });
      },
      alert: function (alert) {
        append("[alert] " + (alert.pattern || "") + ": " + (alert.line || ""));
      },
      eof: function () {
        append("[end of the job's output]");
        source.close();
      },
    });
  }

  function benchmarksPage() {
    var tbody = document.querySelector("#benchmarks tbody");
    var reloading = false;
    function reloadSoon() {
      if (reloading) return;
      reloading = true;
      window.setTimeout(function () {
        window.location.reload();
      }, 1000);
    }
    connect(eventsUrl(), {
      benchmark: function (b) {
        var row = findByData(tbody, "benchmarkId", b.benchmark_id);
        if (!row) return reloadSoon();
        setState(field(row, "state"), b.state);
        if (b.has_results && !field(row, "results").textContent.trim()) reloadSoon();
      },
    });
  }

  /* -- charts ---------------------------------------------------------------------------- */

  var COLORS = ["#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#57606a"];

  function chart(elementId, labels, unit) {
    var el = document.getElementById(elementId);
    if (!el || typeof window.uPlot !== "function") return null;
    labels = labels.slice();
    function seriesOf(label, i) {
      return { label: label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true };
    }
    var data = [[]].concat(labels.map(function () {
      return [];
    }));
    var plot = new window.uPlot(
      {
        width: Math.max(280, el.clientWidth || 420),
        height: 200,
        scales: { x: { time: false } },
        axes: [{ label: "s" }, { label: unit }],
        series: [{ label: "elapsed (s)" }].concat(labels.map(seriesOf)),
      },
      data,
      el
    );
    if (typeof window.ResizeObserver === "function") {
      /* the chart follows its box (the grid settles as charts are added, windows resize) */
      new window.ResizeObserver(function () {
        var width = Math.max(280, el.clientWidth);
        if (Math.abs(width - plot.width) > 1) plot.setSize({ width: width, height: 200 });
      }).observe(el);
    }
    return {
      /* values[i] belongs to labels[i]; x only grows (a replayed point is skipped) */
      push: function (x, values) {
        var xs = data[0];
        if (xs.length && !(x > xs[xs.length - 1])) return;
        xs.push(x);
        for (var i = 0; i < labels.length; i++) {
          var v = values[i];
          data[i + 1].push(v === undefined ? null : v);
        }
        if (xs.length > MAX_POINTS) {
          data.forEach(function (column) {
            column.shift();
          });
        }
        plot.setData(data);
        el.dataset.points = String(xs.length); /* what the chart shows, for tests */
      },
      /* values by series name; a name not seen before becomes a new series */
      pushNamed: function (x, names, values) {
        names.forEach(function (name) {
          if (labels.indexOf(name) >= 0) return;
          labels.push(name);
          data.push(data[0].map(function () {
            return null;
          }));
          plot.addSeries(seriesOf(name, labels.length - 1));
        });
        this.push(
          x,
          labels.map(function (label) {
            var at = names.indexOf(label);
            return at < 0 ? null : values[at];
          })
        );
      },
      points: function () {
        return data[0].length;
      },
    };
  }

  function benchmarkPage() {
    var body = document.body;
    var rate = chart("chart-rate", ["req/s", "failures/window"], "per s");
    var latency = chart("chart-latency", ["TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"], "ms");
    var delay = chart("chart-delay", ["delay p50", "delay p99"], "ms");
    var elapsed = 0;
    var count = 0;
    var cells = document.querySelectorAll("[data-w]");
    connect(eventsUrl(), {
      window: function (w) {
        elapsed += w.window_s;
        count += 1;
        var x = Math.round(elapsed * 10) / 10;
        if (rate) rate.push(x, [w.request_rate, w.window_errors]);
        if (latency) latency.push(x, [w.ttft_p50_ms, w.ttft_p99_ms, w.tpot_p50_ms, w.tpot_p99_ms]);
        if (delay) delay.push(x, [w.schedule_delay_p50_ms, w.schedule_delay_p99_ms]);
        cells.forEach(function (cell) {
          var key = cell.dataset.w;
          var digits = /_ms$|_rate$/.test(key) ? (/tpot|delay/.test(key) ? 2 : 1) : undefined;
          var text = number(w[key], digits);
          setText(cell, cell.dataset.unit && text !== "–" ? text + " " + cell.dataset.unit : text);
        });
        setText(document.getElementById("window-count"), count);
      },
      benchmark: function (b) {
        setState(field(document, "state"), b.state);
        setText(field(document, "reason"), b.reason);
        document.getElementById("cancel-form").hidden = b.terminal;
        if (b.terminal && body.dataset.terminal !== "true") {
          body.dataset.terminal = "true";
          window.setTimeout(function () {
            window.location.reload();
          }, 500);
        }
      },
      note: addNote,
    });
  }

  function followMonitor(url) {
    var holder = document.getElementById("monitor-charts");
    var charts = {};
    connect(url, {
      figures: function (f) {
        document.getElementById("monitor-empty").hidden = true;
        Object.keys(f.values).forEach(function (name) {
          if (!charts[name]) {
            var figure = document.createElement("figure");
            var caption = document.createElement("figcaption");
            var box = document.createElement("div");
            caption.textContent = f.labels[name] || name;
            box.className = "chart";
            box.id = "monitor-" + Object.keys(charts).length;
            box.dataset.chart = name;
            figure.append(caption, box);
            holder.append(figure);
            charts[name] = chart(box.id, f.series[name] || [name], f.units[name] || "");
          }
          if (charts[name]) charts[name].pushNamed(f.elapsed_s, f.series[name] || [name], f.values[name]);
        });
      },
    });
  }

  /* -- experiments ----------------------------------------------------------------------- */

  function experimentPage() {
    var list = document.getElementById("steps");
    var template = document.getElementById("step-row");
    connect(eventsUrl(), {
      step: function (s) {
        var item = findByData(list, "step", s.name);
        if (!item) {
          item = template.content.firstElementChild.cloneNode(true);
          item.dataset.step = s.name;
          setText(item.querySelector(".step-name"), s.name);
          list.append(item);
        }
        item.className = "step" + (STATE_NAME.test(s.state) ? " step-" + s.state : "");
        setState(field(item, "state"), s.state);
        setText(field(item, "detail"), s.detail);
        var link = field(item, "link");
        if (link && s.link && localLink(s.link)) {
          link.href = s.link;
          link.textContent = s.link_text;
          link.hidden = false;
        }
      },
      run: function (r) {
        setState(field(document, "state"), r.state);
        if (r.terminal) window.location.reload();
      },
    });
  }

  var PAGES = {
    services: servicesPage,
    service: servicePage,
    benchmarks: benchmarksPage,
    benchmark: benchmarkPage,
    experiment: experimentPage,
  };

  document.addEventListener("DOMContentLoaded", function () {
    var start = PAGES[document.body.dataset.page];
    if (start && eventsUrl()) start();
  });
})();
