/// The observer's page: one HTML shell, one script, one style sheet, served by the observer
/// itself (no CDN, nothing fetched from elsewhere). The script builds every element with
/// `createElement` and `textContent`: text a process put in its name, label, state or
/// mailbox is shown as text and never parsed as HTML.
enum WebAssets {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Parley observer</title>
    <link rel="stylesheet" href="app.css">
    <script src="app.js" defer></script>
    </head>
    <body>
    <header>
      <strong>Parley observer</strong> <select id="node-picker" title="the node shown: this one, or one it is connected to"></select>
      <nav>
        <a href="#/system" data-tab="system">System</a>
        <a href="#/processes" data-tab="processes">Processes</a>
        <a href="#/supervision" data-tab="supervision">Supervision trees</a>
        <a href="#/channels" data-tab="channels">Channels</a>
        <a href="#/cluster" data-tab="cluster">Cluster</a>
      </nav>
      <span id="status" class="muted">connecting…</span>
    </header>
    <main id="main"></main>
    </body>
    </html>
    """#

    static let style = #"""
    body { font: 14px system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
    header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1em; background: #26323f; color: #fff; }
    header a { color: #cfe0f5; margin-right: 1em; text-decoration: none; }
    header a.active { color: #fff; border-bottom: 2px solid #7fb8ff; }
    main { padding: 1em; }
    .muted { color: #8894a0; }
    .cards { display: flex; flex-wrap: wrap; gap: .8em; margin-bottom: 1em; }
    .card { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: .6em .9em; min-width: 9em; }
    .card .v { font-size: 1.4em; font-weight: 600; }
    table { border-collapse: collapse; background: #fff; width: 100%; }
    th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eceff3; font-variant-numeric: tabular-nums; }
    th { cursor: pointer; user-select: none; background: #eef1f5; }
    th.sorted::after { content: attr(data-dir); }
    td.num, th.num { text-align: right; }
    #info th { width: 12em; cursor: default; }
    pre { background: #fff; border: 1px solid #dde2e8; padding: .5em; overflow: auto; max-height: 24em; white-space: pre-wrap; word-break: break-all; }
    ul.tree { list-style: none; padding-left: 1.2em; border-left: 1px dotted #b5bec8; }
    .toolbar { display: flex; gap: .6em; margin: .5em 0; align-items: center; }
    svg.chart { background: #fff; border: 1px solid #dde2e8; }
    .error { color: #b3261e; }
    .warn { color: #a86400; font-weight: 600; }
    input[type=number] { width: 6em; }
    #trace-events { background: #fff; border: 1px solid #dde2e8; max-height: 24em; overflow: auto; font: 12px ui-monospace, monospace; padding: .3em .5em; }
    #trace-events div { white-space: pre-wrap; word-break: break-all; border-bottom: 1px solid #f1f3f6; }
    .bar { display: inline-block; width: 8em; height: .7em; background: #eceff3; border-radius: 3px; vertical-align: middle; margin-right: .4em; }
    .bar > span { display: block; height: 100%; background: #2f6fdb; border-radius: 3px; }
    .bar.full > span { background: #c93d3d; }
    button { cursor: pointer; }
    """#

    static let script = #"""
    "use strict";
    const state = { config: null, node: null, live: null, pick: 0, failure: null, history: {}, rates: {}, traceStream: null, sort: "reductions", order: "desc", q: "", offset: 0, limit: 50, last: null, tableTicket: 0 };
    const el = (tag, attrs, ...kids) => {
      const e = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs || {})) {
        if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
      }
      for (const k of kids) if (k != null) e.append(k);
      return e;
    };
    const fmtBytes = n => n >= 1 << 30 ? (n / (1 << 30)).toFixed(1) + " GiB" : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";
    const show = (parent, ...kids) => parent.replaceChildren(...kids.filter(k => k != null));
    const card = (label, value) => el("div", { class: "card" }, el("div", { class: "muted", text: label }), el("div", { class: "v", text: String(value) }));
    const pidLink = p => p ? el("a", { href: "#/process/" + p.replace(/[<>]/g, ""), text: p }) : el("span", { class: "muted", text: "undefined" });
    // The node shown: null for the observer's own, else a connected node's name, whose
    // data the observer fetches over distribution (?node=).
    const withNode = (path, node) => node ? path + (path.includes("?") ? "&" : "?") + "node=" + encodeURIComponent(node) : path;
    const at = path => withNode(path, state.node);
    // `node`: the node a request is for, when the caller fixed it earlier (a trace box
    // built for one node must not talk to the next one picked); else the one shown now.
    async function api(path, options, node) {
      const r = await fetch(node === undefined ? at(path) : withNode(path, node), Object.assign({ credentials: "same-origin" }, options || {}));
      if (!r.ok) throw new Error(r.status + " " + (await r.text()));
      return r.json();
    }
    function route() { return (location.hash || "#/system").slice(2).split("/"); }
    function render() {
      const [tab, arg] = route();
      for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
      if (tab !== "process" && state.traceStream) { state.traceStream.close(); state.traceStream = null; }
      if (tab === "processes") return renderProcesses();
      if (tab === "process") return renderProcess(arg);
      if (tab === "supervision") return renderSupervision();
      if (tab === "cluster") return renderCluster(state.last);
      if (tab === "channels") return renderChannels();
      return renderSystem(state.last);
    }
    function renderSystem(s) {
      const main = document.getElementById("main");
      if (!s) { main.replaceChildren(el("p", { class: "muted", text: "waiting for the first sample…" })); return; }
      const cards = el("div", { class: "cards" },
        card("uptime", Math.round(s.uptimeSeconds) + " s"), card("processes", s.processCount), card("registered names", s.registeredNames),
        card("resident memory", fmtBytes(s.residentBytes)), card("heap in use", fmtBytes(s.heapBytes)), card("timers", s.timers),
        card("global run queue", s.globalQueueLength), card("long schedules", s.longSchedulesTotal),
        card("blocking threads", s.blockingBusy + " busy / " + s.blockingThreads + " (max " + s.blockingLimit + ")"));
      const chart = utilizationChart();
      const rows = s.schedulers.map(w => el("tr", {}, el("td", { text: "parley-sched-" + w.index }),
        el("td", { class: "num", text: (w.utilization * 100).toFixed(1) + " %" }), el("td", { class: "num", text: w.runQueueLength }),
        el("td", { class: "num", text: w.jobsRun }), el("td", { class: "num", text: w.steals })));
      const sched = el("table", { id: "schedulers" }, el("tr", {}, el("th", { text: "scheduler" }), el("th", { class: "num", text: "utilization" }),
        el("th", { class: "num", text: "run queue" }), el("th", { class: "num", text: "jobs run" }), el("th", { class: "num", text: "steals" })), ...rows);
      const peers = s.peers.length ? el("p", {}, el("a", { href: "#/cluster", text: s.peers.length + " connection" + (s.peers.length === 1 ? "" : "s") }),
                                        el("span", { class: "muted", text: ": " + s.peers.map(p => p.name + " " + p.state).join(", ") }))
                                   : el("p", { class: "muted", text: s.distributed ? "no connected nodes" : "not distributed" });
      const longs = s.recentLongSchedules.length ? el("ul", {}, ...s.recentLongSchedules.map(l => el("li", { text: l.job + " ran " + Math.round(l.milliseconds) + " ms" }))) : null;
      show(main, cards, el("h3", { text: "Scheduler utilization (last 60 samples)" }), chart, sched, el("h3", { text: "Cluster" }), peers,
        longs ? el("h3", { text: "Recent long schedules" }) : null, longs);
    }
    function renderCluster(s) {
      const main = document.getElementById("main");
      if (!s) { main.replaceChildren(el("p", { class: "muted", text: "waiting for the first sample…" })); return; }
      if (!s.distributed) { main.replaceChildren(el("h2", { text: s.node }), el("p", { class: "muted", text: "this node is not distributed (start it with a name: parley node --name a@127.0.0.1)" })); return; }
      const rate = (p, key) => { const r = state.rates[p.name]; return r && r[key] != null ? r[key].toFixed(1) + "/s" : "–"; };
      const cols = ["node", "type", "state", "address", "up for", "frames in", "frames out", "in /s", "out /s", "bytes in", "bytes out"];
      const head = el("tr", {}, ...cols.map((c, i) => el("th", { class: i >= 5 ? "num" : "", text: c })));
      const rows = s.peers.map(p => el("tr", { "data-node": p.name }, el("td", { text: p.name }), el("td", { text: p.hidden ? "hidden" : "normal" }),
        el("td", { class: p.state === "up" ? "" : "warn", text: p.state === "silent" ? "silent " + p.silentTicks + " tick" + (p.silentTicks === 1 ? "" : "s") : p.state }),
        el("td", { text: p.address || "" }), el("td", { text: p.state === "pending" ? "" : Math.round(p.upSeconds) + " s" }),
        el("td", { class: "num", text: p.framesIn }), el("td", { class: "num", text: p.framesOut }),
        el("td", { class: "num", text: rate(p, "framesIn") }), el("td", { class: "num", text: rate(p, "framesOut") }),
        el("td", { class: "num", text: fmtBytes(p.bytesIn) }), el("td", { class: "num", text: fmtBytes(p.bytesOut) })));
      main.replaceChildren(el("h2", { text: s.node }),
        s.peers.length ? el("table", { id: "nodes" }, head, ...rows) : el("p", { class: "muted", text: "no connected nodes" }),
        el("p", { class: "muted", text: "Frames are distribution messages and signals, net ticks not counted (net_kernel:node_info/1's in and out). A node is silent when nothing has arrived for a net tick period or more; at four it is disconnected." }));
    }
    async function renderChannels() {
      const main = document.getElementById("main");
      let reply;
      try { reply = await api("api/channels"); } catch (e) { main.replaceChildren(el("p", { class: "error", text: String(e) })); return; }
      if (route()[0] !== "channels") return;
      const cols = ["name", "buffer", "element", "fill", "pending sends", "pending receives", "state"];
      const head = el("tr", {}, ...cols.map((c, i) => el("th", { class: i === 4 || i === 5 ? "num" : "", text: c })));
      const fill = c => {
        if (c.capacity === 0) return el("span", { text: c.buffer === "promise" ? (c.count ? "delivered" : "empty") : "–" });
        const pct = Math.min(100, Math.round((100 * c.count) / c.capacity));
        const inner = el("span", {});
        inner.style.width = pct + "%"; // CSSOM, which the page's CSP allows (a style attribute it would not)
        const bar = el("span", { class: "bar" + (pct >= 100 ? " full" : "") }, inner);
        return el("span", {}, bar, el("span", { text: c.count + " / " + c.capacity }));
      };
      const rows = reply.channels.map(c => el("tr", { "data-channel": c.name }, el("td", { text: c.name }), el("td", { text: c.buffer }),
        el("td", { text: c.elementType }), el("td", {}, fill(c)), el("td", { class: "num", text: c.pendingSends }),
        el("td", { class: "num", text: c.pendingReceives }), el("td", { class: c.isClosed ? "muted" : "", text: c.isClosed ? "closed" : "open" })));
      main.replaceChildren(reply.channels.length ? el("table", { id: "channels" }, head, ...rows)
                                                 : el("p", { class: "muted", text: "no channel has opted into introspection (Channel(...).observed(as: \"name\"))" }));
    }
    function noteRates(s) {
      const now = performance.now(), next = {};
      for (const p of s.peers) {
        const before = state.rates[p.name];
        const r = { t: now, framesIn: null, framesOut: null, raw: p };
        if (before && before.raw && now > before.t && p.framesIn >= before.raw.framesIn) {
          const dt = (now - before.t) / 1000;
          r.framesIn = (p.framesIn - before.raw.framesIn) / dt; r.framesOut = (p.framesOut - before.raw.framesOut) / dt;
        }
        next[p.name] = r;
      }
      state.rates = next;
    }
    function utilizationChart() {
      const ns = "http://www.w3.org/2000/svg", w = 600, h = 120;
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("class", "chart"); svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
      const colors = ["#2f6fdb", "#d9822b", "#2e9e5b", "#a24bc9", "#c93d3d", "#4a8f8f", "#8f7a4a", "#555"];
      Object.entries(state.history).forEach(([i, series], k) => {
        const line = document.createElementNS(ns, "polyline");
        line.setAttribute("fill", "none"); line.setAttribute("stroke", colors[k % colors.length]); line.setAttribute("stroke-width", "2");
        line.setAttribute("points", series.map((u, j) => `${(j * w) / 59},${h - 4 - u * (h - 8)}`).join(" "));
        svg.append(line);
      });
      return svg;
    }
    async function renderProcesses() {
      if (route()[0] !== "processes") return; // a late search or sort timer after leaving the tab
      const main = document.getElementById("main");
      let table = document.getElementById("processes");
      if (!table) {
        const search = el("input", { id: "search", placeholder: "search pid, name, label, behaviour", value: state.q });
        let timer = null;
        search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { state.q = search.value; state.offset = 0; renderProcesses(); }, 250); });
        const prev = el("button", { id: "prev", text: "◀ previous", onclick: () => { state.offset = Math.max(0, state.offset - state.limit); renderProcesses(); } });
        const next = el("button", { id: "next", text: "next ▶", onclick: () => { state.offset += state.limit; renderProcesses(); } });
        table = el("table", { id: "processes" });
        main.replaceChildren(el("div", { class: "toolbar" }, search, prev, next, el("span", { id: "pageinfo", class: "muted" })), table);
      }
      const params = new URLSearchParams({ sort: state.sort, order: state.order, q: state.q, offset: state.offset, limit: state.limit });
      const ticket = ++state.tableTicket; // a reply to an older request (an older sort) must not overwrite a newer one
      let page;
      try { page = await api("api/processes?" + params); } catch (e) { table.replaceChildren(el("tr", {}, el("td", { class: "error", text: String(e) }))); return; }
      if (route()[0] !== "processes" || ticket !== state.tableTicket) return;
      const cols = [["pid", "pid"], ["name", "name / label"], ["kind", "kind"], ["status", "status"], ["queue", "mailbox", true], ["reductions", "reductions", true], ["memory", "memory", true]];
      const head = el("tr", {}, ...cols.map(([key, label, num]) => {
        const th = el("th", { "data-col": key, class: (num ? "num " : "") + (state.sort === key ? "sorted" : ""), "data-dir": state.order === "desc" ? " ▼" : " ▲", text: label });
        th.addEventListener("click", () => { if (state.sort === key) state.order = state.order === "desc" ? "asc" : "desc"; else { state.sort = key; state.order = num ? "desc" : "asc"; } state.offset = 0; renderProcesses(); });
        return th;
      }));
      const rows = page.rows.map(r => el("tr", { "data-pid": r.pid }, el("td", {}, pidLink(r.pid)),
        el("td", { text: [r.name, r.label, r.behaviour].filter(x => x).join(" · ") }), el("td", { text: r.kind }), el("td", { text: r.status }),
        el("td", { class: "num", text: r.queue }), el("td", { class: "num", text: r.reductions }), el("td", { class: "num", text: fmtBytes(r.memory) })));
      table.replaceChildren(head, ...rows);
      document.getElementById("pageinfo").textContent = `${page.matched ? page.offset + 1 : 0}–${page.offset + page.rows.length} of ${page.matched} (${page.total} processes; table walked in ${page.walkMilliseconds.toFixed(1)} ms, ${(page.ageMilliseconds / 1000).toFixed(1)} s ago)`;
    }
    async function renderProcess(pidText) {
      const main = document.getElementById("main");
      let d;
      try { d = await api("api/processes/" + encodeURIComponent(pidText)); }
      catch (e) { main.replaceChildren(el("h2", { text: "<" + pidText + ">" }), el("p", { class: "error", text: "not alive (" + e.message + ")" })); return; }
      if (route()[0] !== "process") return;
      const dl = el("table", { id: "info" }, ...[["pid", d.pid], ["registered name", d.name], ["label", d.label], ["behaviour", d.behaviour], ["kind", d.kind],
        ["status", d.status], ["mailbox", d.queue], ["messages handled", d.handled], ["reductions", d.reductions], ["memory", fmtBytes(d.memory)],
        ["trap exit", d.trapExit], ["mailbox limit", d.mailboxLimit], ["dropped messages", d.droppedMessages]]
        .filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: String(v) }))));
      const list = (title, pids) => [el("h3", { text: title + " (" + pids.length + ")" }), el("div", {}, ...pids.flatMap(p => [pidLink(p), " "]))];
      const mailbox = d.mailbox.length ? el("div", { id: "mailbox" }, ...d.mailbox.map(m => el("pre", { text: m }))) : el("p", { class: "muted", text: "empty" });
      const stateBlock = d.state != null ? el("pre", { id: "state", text: d.state }) : el("p", { class: d.stateError ? "error" : "muted", text: d.stateError || "a plain process: no behaviour state" });
      const actions = [];
      if (state.config && state.config.allowActions) {
        const reason = el("input", { id: "kill-reason", value: "kill" });
        const message = el("input", { id: "send-text", placeholder: "a String message" });
        const out = el("span", { id: "action-result", class: "muted" });
        const act = async (path, body) => {
          try { const r = await api(path, { method: "POST", headers: { "Content-Type": "application/json", "X-Parley-Observer": "1" }, body: JSON.stringify(body) }); out.textContent = r.detail; }
          catch (e) { out.textContent = String(e); }
          setTimeout(render, 300);
        };
        actions.push(el("h3", { text: "Actions" }), el("div", { class: "toolbar" }, el("button", { id: "kill", text: "kill with reason", onclick: () => act("api/processes/" + pidText + "/kill", { reason: reason.value }) }), reason),
          el("div", { class: "toolbar" }, el("button", { id: "send", text: "send", onclick: () => act("api/processes/" + pidText + "/send", { message: message.value }) }), message, out));
      }
      main.replaceChildren(el("h2", { text: d.pid + (d.name ? " " + d.name : "") }), dl, ...list("Links", d.links), ...list("Monitors", d.monitors),
        ...list("Monitored by", d.monitoredBy), el("h3", { text: `Mailbox (first ${d.mailbox.length} of ${d.queue})` }), mailbox, el("h3", { text: "State" }), stateBlock, ...actions,
        ...traceBlock(pidText));
    }
    function traceBlock(pidText) {
      if (state.traceStream) { state.traceStream.close(); state.traceStream = null; }
      const node = state.node;
      const base = "api/processes/" + encodeURIComponent(pidText) + "/trace";
      const events = el("div", { id: "trace-events" });
      const status = el("span", { id: "trace-status", class: "muted", text: "not traced" });
      const download = el("a", { id: "trace-download", href: withNode(base + "/download", node), text: "download (NDJSON)" });
      const line = e => el("div", { "data-kind": e.kind, text: `+${(e.nanoseconds / 1e6).toFixed(3)} ms  ${e.kind}${e.other ? " " + e.other : ""}${e.detail != null ? "  " + e.detail : ""}` });
      const add = list => {
        for (const e of list) {
          events.append(line(e));
          if (e.kind === "stopped") status.textContent = "stopped: " + e.detail;
        }
        while (events.childElementCount > 500) events.firstChild.remove();
        events.scrollTop = events.scrollHeight;
      };
      const stream = after => {
        if (state.traceStream) state.traceStream.close();
        if (state.node !== node) return;
        const source = new EventSource(withNode(base + "/stream", node));
        state.traceStream = source;
        source.addEventListener("trace", ev => {
          const list = JSON.parse(ev.data).filter(e => e.sequence > after);
          if (list.length) after = list[list.length - 1].sequence;
          add(list);
          if (list.some(e => e.kind === "stopped")) { source.close(); if (state.traceStream === source) state.traceStream = null; }
        });
      };
      const load = async () => {
        let t;
        try { t = await api(base, undefined, node); } catch (e) { return; }
        if (state.node !== node) return;
        events.replaceChildren();
        add(t.events);
        status.textContent = t.active ? "tracing, " + t.limit : "stopped: " + t.stopReason;
        const last = t.events.length ? t.events[t.events.length - 1].sequence : 0;
        if (t.active) stream(last);
      };
      const blocks = [el("h3", { text: "Tracing" })];
      if (state.config && state.config.allowActions) {
        const box = (name, label) => { const c = el("input", { type: "checkbox", id: "trace-" + name, checked: "" }); return el("label", {}, c, " " + label); };
        const limit = el("input", { id: "trace-limit", type: "number", value: "100", min: "1" });
        const per = el("input", { id: "trace-per", type: "number", value: "1", min: "0" });
        const start = async () => {
          const flags = ["send", "receive", "procs"].filter(f => document.getElementById("trace-" + f).checked);
          const body = { flags, limit: Number(limit.value) };
          if (Number(per.value) > 0) body.perSeconds = Number(per.value);
          try {
            const r = await api(base, { method: "POST", headers: { "Content-Type": "application/json", "X-Parley-Observer": "1" }, body: JSON.stringify(body) }, node);
            status.textContent = r.detail;
            events.replaceChildren();
            stream(0);
          } catch (e) { status.textContent = String(e); }
        };
        const stop = async () => {
          try { await api(base + "/stop", { method: "POST", headers: { "X-Parley-Observer": "1" } }, node); } catch (e) { status.textContent = String(e); }
        };
        blocks.push(el("div", { class: "toolbar" }, box("send", "sends"), box("receive", "receives"), box("procs", "spawns, links, exit"),
          el("span", { text: "stop after" }), limit, el("span", { text: "events per" }), per, el("span", { text: "s (0: in all)" }),
          el("button", { id: "trace-start", text: "start tracing", onclick: start }), el("button", { id: "trace-stop", text: "stop", onclick: stop })));
      }
      blocks.push(el("div", { class: "toolbar" }, status, download), events);
      load();
      return blocks;
    }
    async function renderSupervision() {
      const main = document.getElementById("main");
      let reply;
      try { reply = await api("api/supervision"); } catch (e) { main.replaceChildren(el("p", { class: "error", text: String(e) })); return; }
      if (route()[0] !== "supervision") return;
      const node = n => el("li", {}, el("span", { text: n.id + " " }), pidLink(n.pid),
        el("span", { class: "muted", text: ` ${n.type}${n.restart ? ", " + n.restart : ""}, restarts ${n.restarts}` }),
        n.lastExitReason ? el("span", { class: "error", text: " last exit: " + n.lastExitReason }) : null,
        n.error ? el("span", { class: "error", text: " " + n.error }) : null,
        n.children.length ? el("ul", { class: "tree" }, ...n.children.map(node)) : null);
      main.replaceChildren(reply.trees.length ? el("ul", { id: "trees", class: "tree" }, ...reply.trees.map(node)) : el("p", { class: "muted", text: "no supervisors on this node" }));
    }
    function onSample(s) {
      state.last = s;
      refreshNodes();
      for (const w of s.schedulers) { const h = state.history[w.index] || (state.history[w.index] = []); h.push(w.utilization); if (h.length > 60) h.shift(); }
      noteRates(s);
      const [tab] = route();
      if (tab === "system" || tab === "") renderSystem(s); else if (tab === "processes") renderProcesses(); else if (tab === "cluster") renderCluster(s); else if (tab === "channels") renderChannels();
    }
    function stopLive() {
      if (state.live) { state.live.close(); state.live = null; }
    }
    function startLive() {
      stopLive();
      const live = new EventSource(at("api/live"));
      state.live = live;
      const status = document.getElementById("status");
      live.addEventListener("system", ev => { if (state.live !== live) return; status.textContent = "live"; onSample(JSON.parse(ev.data)); });
      // Another node that stopped answering: the stream says why, then ends.
      live.addEventListener("failure", ev => { if (state.live !== live) return; stopLive(); status.textContent = "stopped: " + JSON.parse(ev.data).message; });
      live.onerror = () => {
        if (state.live !== live) return;
        if (live.readyState === EventSource.CLOSED) { stopLive(); status.textContent = "stopped: " + (state.failure || "the stream ended (reload to retry)"); }
        else status.textContent = "reconnecting…";
      };
    }
    // The picker: this node and the nodes it is connected to, refreshed with each sample.
    async function refreshNodes() {
      let n;
      try { n = await fetch("api/nodes", { credentials: "same-origin" }).then(r => r.json()); } catch (e) { return; }
      const picker = document.getElementById("node-picker");
      const names = n.connected.slice();
      if (state.node && !names.includes(state.node)) names.push(state.node);
      const wanted = [""].concat(names).join("\n");
      if (picker.dataset.list === wanted) return;
      picker.dataset.list = wanted;
      picker.replaceChildren(el("option", { value: "", text: n.node + " (this node)" }),
        ...names.map(name => el("option", { value: name, text: name + (n.connected.includes(name) ? "" : " (disconnected)") })));
      picker.value = state.node || "";
    }
    async function pickNode(name) {
      // Nothing of the node shown before may land after this: its stream closes now, and a
      // reply to an older pick is dropped.
      const pick = ++state.pick;
      stopLive();
      if (state.traceStream) { state.traceStream.close(); state.traceStream = null; }
      state.node = name || null;
      state.history = {}; state.rates = {}; state.last = null; state.offset = 0; state.failure = null;
      // A pid names a process of one node: another node's page starts at its System page.
      if (route()[0] === "process") location.hash = "#/system";
      const status = document.getElementById("status");
      status.textContent = "connecting…";
      let first;
      try { first = await api("api/system"); } catch (e) {
        if (pick !== state.pick) return;
        state.failure = e.message;
        status.textContent = "stopped: " + e.message;
        document.getElementById("main").replaceChildren(el("p", { id: "node-error", class: "error", text: String(e) }));
        return;
      }
      if (pick !== state.pick) return;
      onSample(first);
      render();
      startLive();
    }
    async function start() {
      try { state.config = await api("api/config"); } catch (e) { document.getElementById("status").textContent = String(e); return; }
      const picker = document.getElementById("node-picker");
      picker.addEventListener("change", () => pickNode(picker.value));
      await refreshNodes();
      window.addEventListener("hashchange", render);
      try { onSample(await api("api/system")); } catch (e) {}
      render();
      startLive();
    }
    start();
    """#
}
