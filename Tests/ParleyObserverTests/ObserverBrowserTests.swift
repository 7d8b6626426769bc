import Foundation
import ParleyDistribution
import ParleyObserver
import ParleyOTP
import Testing

/// The observer's page in a real (headless) Chromium: what a person sees and clicks.
@Suite("Observer: the page in a real browser", .serialized, .timeLimit(.minutes(3)),
       .enabled(if: Browser.available, "run with PARLEY_BROWSER_TESTS=1 (CI runs this suite in a step of its own: Chromium beside the other suites starves them on small machines)"))
struct ObserverBrowserTests {
    @Test("System page: a row per scheduler, and live updates over server-sent events with no reload")
    func systemLive() async throws {
        try await withObserver(.init(refresh: .milliseconds(200))) { _, port in
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/system")
                #expect(try await b.waitFor("return document.querySelectorAll('#schedulers tr').length === \(Scheduler.shared.count + 1)"))
                #expect(try await b.waitFor("return document.getElementById('status').textContent === 'live'"), "an event arrived")
                try b.run("window.__marker = 1")
                let before = try b.run("return document.querySelector('.card .v').textContent") as? String
                #expect(try await b.waitFor("return document.querySelector('.card .v').textContent !== \(jsString(before ?? ""))"),
                        "uptime moves on by itself")
                #expect(try b.run("return window.__marker") as? Int == 1, "the page was not reloaded")
                #expect(try b.run("return document.getElementById('main').textContent.includes('null')") as? Bool == false,
                        "no missing value shows as null")
                try b.artifact("system")
            }
        }
    }

    @Test("Processes page: the search box filters; clicking the mailbox column sorts by it; a row opens the process page")
    func processTable() async throws {
        try await withObserver(.init(refresh: .milliseconds(300))) { _, port in
            // Other suites' processes run beside these: the test searches for its own tag.
            let tag = "brw\(UInt32.random(in: 0...UInt32.max))"
            let small = try Process.spawn(SpawnOptions(name: "\(tag)-small")) { me in try await me.sleep(for: .seconds(60)) }
            let full = try Process.spawn(SpawnOptions(name: "\(tag)-full")) { me in try await me.sleep(for: .seconds(60)) }
            defer { [small, full].forEach { Process.exit($0, .kill) } }
            for i in 0..<77 { full.send(i) }
            for i in 0..<5 { small.send(i) }
            #expect(await eventually { Process.info(full)?.messageQueueLength == 77 && Process.info(small)?.messageQueueLength == 5 })
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/processes")
                #expect(try await b.waitFor("return !!document.getElementById('search')"))
                try b.run("const s = document.getElementById('search'); s.value = '\(tag)'; s.dispatchEvent(new Event('input'))")
                #expect(try await b.waitFor("return document.querySelectorAll('#processes tr[data-pid]').length === 2"))
                // Default order: reductions (0 for both), ties by pid: the small one, spawned first.
                #expect(try await b.waitFor("return document.querySelector('#processes tr[data-pid]').dataset.pid === '\(small)'"))
                try await b.click("th[data-col=queue]")
                #expect(try await b.waitFor("return document.querySelector('#processes tr[data-pid]').dataset.pid === '\(full)'"),
                        "the fullest mailbox first")
                #expect(try b.run("return document.querySelector('#processes tr[data-pid] td.num').textContent") as? String == "77")
                try b.artifact("processes")
                try await b.click("#processes tr[data-pid] a")
                let opened = try await b.waitFor("return location.hash === '#/process/\(urlForm(full))' && !!document.getElementById('mailbox')")
                if !opened {
                    try? b.screenshot(to: "/tmp/parley-observer-failure.png")
                    Issue.record("at \(try b.run("return location.hash + ' ' + document.getElementById('main').textContent.slice(0, 300)") ?? "")")
                }
                #expect(try b.run("return document.querySelectorAll('#mailbox pre').length") as? Int == ProcessDetail.mailboxHead)
                try b.artifact("process")
            }
        }
    }

    @Test("Nothing a process holds can script the page: names, labels, messages and state show as text (no element, no script run)")
    func escaping() async throws {
        try await withObserver { _, port in
            let evil = #"<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"#
            let victim = try Process.spawn(SpawnOptions(label: evil)) { me in try await me.sleep(for: .seconds(60)) }
            defer { Process.exit(victim, .kill) }
            victim.send(evil)
            let vault = try Vault().start()
            defer { if let p = vault.pid { Process.exit(p, .kill) } }
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/processes")
                #expect(try await b.waitFor("return !!document.getElementById('search')"))
                try b.run("const s = document.getElementById('search'); s.value = 'onerror'; s.dispatchEvent(new Event('input'))")
                #expect(try await b.waitFor("return [...document.querySelectorAll('#processes td')].some(td => td.textContent.includes('onerror='))"),
                        "the label shows as text")
                try b.open("http://127.0.0.1:\(port)/#/process/\(urlForm(victim))")
                #expect(try await b.waitFor("return !!document.querySelector('#mailbox pre')"))
                #expect(try b.run("return document.querySelector('#mailbox pre').textContent") as? String == evil)
                try b.open("http://127.0.0.1:\(port)/#/process/\(urlForm(vault.pid!))")
                #expect(try await b.waitFor("return !!document.getElementById('state')"))
                #expect((try b.run("return document.getElementById('state').textContent") as? String)?.contains("<script>") == true)
                #expect(try b.run("return document.querySelectorAll('main img, main script').length") as? Int == 0)
                #expect(try b.run("return document.title") as? String == "Parley observer")
                try b.artifact("escaping")
            }
        }
    }

    @Test("Kill from the process page ends the process, and it leaves the table; a read-only observer shows no actions")
    func killAndReadOnly() async throws {
        let tag = "victim\(UInt32.random(in: 0...UInt32.max))"
        let target = try Process.spawn(SpawnOptions(label: tag)) { me in _ = try await me.receive() }
        try await withObserver(.init(refresh: .milliseconds(200))) { _, port in
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/processes")
                #expect(try await b.waitFor("return !!document.getElementById('search')"))
                try b.run("const s = document.getElementById('search'); s.value = '\(tag)'; s.dispatchEvent(new Event('input'))")
                #expect(try await b.waitFor("return document.querySelectorAll('#processes tr[data-pid]').length === 1"))
                try await b.click("#processes tr[data-pid] a")
                #expect(try await b.waitFor("return !!document.getElementById('kill')"))
                try await b.click("#kill")
                #expect(try await b.waitFor("return document.getElementById('main').textContent.includes('not alive')"),
                        "the page redraws and says the process is gone")
                #expect(await eventually { Process.info(target) == nil })
                try b.run("history.back()")
                #expect(try await b.waitFor("return location.hash === '#/processes' && !!document.getElementById('search')"))
                try b.run("const s = document.getElementById('search'); s.value = '\(tag)'; s.dispatchEvent(new Event('input'))")
                #expect(try await b.waitFor("return document.getElementById('pageinfo').textContent.startsWith('0–0 of 0')"),
                        "the killed process left the table")
            }
        }
        let other = try Process.spawn { me in _ = try await me.receive() }
        defer { Process.exit(other, .kill) }
        try await withObserver(.init(allowActions: false)) { _, port in
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/process/\(urlForm(other))")
                #expect(try await b.waitFor("return !!document.getElementById('info')"))
                #expect(try b.run("return !!document.getElementById('kill') || !!document.getElementById('send')") as? Bool == false)
            }
        }
    }

    @Test("With a token: the first load with ?token= works in the browser and the token leaves the address bar")
    func tokenLogin() async throws {
        try await withObserver(.init(token: "browser-token-1234")) { _, port in
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/?token=browser-token-1234#/system")
                #expect(try await b.waitFor("return document.getElementById('status').textContent === 'live'"))
                #expect((try b.run("return location.search") as? String) == "")
            }
        }
    }

    @Test("Supervision page: the tree with its nested supervisor and children; a crash shows up with its reason and restart count")
    func supervision() async throws {
        try await withObserver { _, port in
            let inner = "inner-\(UInt32.random(in: 0...UInt32.max))"
            let sup = try await Supervisor.start([
                Supervisor.childSpec(id: inner, [
                    ChildSpec(id: "leaf") { me in try me.spawn(SpawnOptions(link: true)) { p in _ = try await p.receive() } },
                ], strategy: .oneForOne),
            ], strategy: .oneForOne)
            defer { Process.exit(sup.pid, .kill) }
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/supervision")
                #expect(try await b.waitFor("return !!document.querySelector('#trees ul.tree ul.tree li')"), "three levels drawn")
                #expect(try await b.waitFor("return document.getElementById('trees').textContent.includes('leaf')"))
                let innerSup = try #require(try await sup.child(inner).supervisor)
                let leaf = try #require(try await innerSup.child("leaf").pid)
                Process.exit(leaf, .custom("leaf crashed for the browser"))
                #expect(try await eventually { try await innerSup.child("leaf").pid.map { $0 != leaf } ?? false })
                try b.run("location.hash = '#/system'; location.hash = '#/supervision'")
                #expect(try await b.waitFor("return document.getElementById('trees').textContent.includes('last exit: leaf crashed for the browser')"))
                #expect(try await b.waitFor("return document.getElementById('trees').textContent.includes('restarts 1')"))
                try b.artifact("supervision")
            }
        }
    }

    @Test("Channels page: an observed channel's row with its buffer and fill bar, updated live as it fills; HTML in its name shows as text")
    func channels() async throws {
        try await withObserver(.init(refresh: .milliseconds(200))) { _, port in
            let name = "browser-chan-<i>\(UInt32.random(in: 0...UInt32.max))</i>"
            let ch = Channel<Int>(buffer: .fixed(10)).observed(as: name)
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/channels")
                let row = "Array.from(document.querySelectorAll('#channels tr')).find(r => r.dataset.channel === \(jsString(name)))"
                #expect(try await b.waitFor("const r = \(row); return !!r && r.cells[3].textContent.includes('0 / 10')"))
                #expect(try b.run("return \(row).cells[0].textContent") as? String == name, "the name as text")
                #expect(try b.run("return document.querySelectorAll('#channels i').length") as? Int == 0, "no element made from the name")
                for i in 0..<10 { #expect(ch.offer(i)) }
                #expect(try await b.waitFor("const r = \(row); return !!r && r.cells[3].textContent.includes('10 / 10') && !!r.querySelector('.bar.full')"),
                        "filled, live")
                try b.artifact("channels")
            }
            withExtendedLifetime(ch) {}
        }
    }

    @Test("Tracing from the process page: start, see receive events stream in live, stop; the list shows messages as text")
    func tracing() async throws {
        let target = try Process.spawn { me in while true { _ = try await me.receive() } }
        defer { Process.exit(target, .kill) }
        try await withObserver { _, port in
            try await withBrowser { b in
                try b.open("http://127.0.0.1:\(port)/#/process/\(urlForm(target))")
                #expect(try await b.waitFor("return !!document.getElementById('trace-start')"))
                try await b.click("#trace-start")
                #expect(await eventually { Process.traceSession(of: target) != nil })
                for i in 0..<3 { target.send("<b>traced \(i)</b>") }
                #expect(try await b.waitFor("return document.querySelectorAll('#trace-events div[data-kind=receive]').length === 3"), "streamed live")
                #expect(try b.run("return document.querySelectorAll('#trace-events b').length") as? Int == 0, "no element made from a message")
                #expect(try b.run("return document.getElementById('trace-events').textContent.includes('<b>traced 2</b>')") as? Bool == true)
                try await b.click("#trace-stop")
                #expect(try await b.waitFor("return document.getElementById('trace-status').textContent.startsWith('stopped')"))
                #expect(Process.traceSession(of: target) == nil)
                try b.run("document.getElementById('trace-events').scrollIntoView()")
                try b.artifact("tracing")
            }
        }
    }

    @Test("Cluster page: a row per connected node with its state, type and traffic; frame counts move live as messages cross")
    func cluster() async throws {
        try await withTwoNodes { b, c in
            #expect(await b.ping(c.name))
            try await withObserver(.init(node: b, refresh: .milliseconds(200))) { _, port in
                try await withBrowser { br in
                    try br.open("http://127.0.0.1:\(port)/#/cluster")
                    let row = "document.querySelector('#nodes tr[data-node=\\'\(c.name)\\']')"
                    #expect(try await br.waitFor("return !!\(row) && \(row).cells[2].textContent.length > 0"))
                    #expect(try br.run("return \(row).cells[1].textContent") as? String == "hidden")
                    let before = Int(try br.run("return \(row).cells[6].textContent") as? String ?? "") ?? -1
                    #expect(before >= 1)
                    try br.run("window.__marker = 1")
                    let sink = try c.spawn(SpawnOptions(name: "obs_browser_sink")) { me in for _ in 0..<200 { _ = try await me.receive() } }
                    try await b.run { p in for i in 0..<200 { p.send(Term.integer(i), to: "obs_browser_sink", on: Node.named(c.name)) } }
                    #expect(await eventually { !sink.isAlive })
                    #expect(try await br.waitFor("return Number(\(row).cells[6].textContent) >= \(before + 200)"), "frames out, live")
                    #expect(try br.run("return window.__marker") as? Int == 1, "the page was not reloaded")
                    try br.artifact("cluster")
                }
            }
        }
    }

    @Test("Another node: pick it in the header, and its System page (live), its processes and a process page show, fetched over distribution; back to this node; a node with no agent is an error on the page")
    func remoteNode() async throws {
        try await withTwoNodes { b, c in
            #expect(await b.ping(c.name))
            let agent = try Observer(.init(node: c))
            let agentPid = try agent.startAgent()
            let tag = "remote-browser-\(UInt32.random(in: 0...UInt32.max))"
            let worker = try c.spawn(SpawnOptions(label: tag)) { me in while true { _ = try await me.receive() } }
            defer { Process.exit(worker, .kill) }
            try await withObserver(.init(node: b, refresh: .milliseconds(200))) { _, port in
                try await withBrowser { br in
                    try br.open("http://127.0.0.1:\(port)/#/system")
                    let option = "document.querySelector('#node-picker option[value=\\'\(c.name)\\']')"
                    #expect(try await br.waitFor("return !!\(option)"), "c is in the picker")
                    try br.run("const p = document.getElementById('node-picker'); p.value = \(jsString(c.name)); p.dispatchEvent(new Event('change'))")
                    #expect(try await br.waitFor("return document.getElementById('status').textContent === 'live'"), "live over distribution")
                    #expect(try await br.waitFor("return document.querySelectorAll('#schedulers tr').length > 1"))
                    try br.run("location.hash = '#/processes'")
                    #expect(try await br.waitFor("return !!document.getElementById('search')"))
                    try br.run("const q = document.getElementById('search'); q.value = \(jsString(tag)); q.dispatchEvent(new Event('input'))")
                    #expect(try await br.waitFor("return document.querySelectorAll('#processes tr[data-pid]').length === 1"), "c's process, searched on c")
                    try br.run("document.querySelector('#processes tr[data-pid] a').click()")
                    #expect(try await br.waitFor("return Array.from(document.querySelectorAll('#info td')).some(td => td.textContent === \(jsString(tag)))"), "its page, from c")
                    try br.artifact("remote-node")
                    try br.run("const p = document.getElementById('node-picker'); p.value = ''; p.dispatchEvent(new Event('change'))")
                    #expect(try await br.waitFor("return location.hash === '#/system'"), "a pid names a process of one node: back to System")
                    try br.run("location.hash = '#/processes'")
                    #expect(try await br.waitFor("return document.getElementById('pageinfo') && document.getElementById('pageinfo').textContent.startsWith('0–0')"), "b has no such process")
                    // A node that runs no agent: the page says so, and stays put.
                    Process.exit(agentPid, .kill)
                    #expect(await eventually { c.whereis("parley_observer") == nil })
                    try br.run("const p = document.getElementById('node-picker'); p.value = \(jsString(c.name)); p.dispatchEvent(new Event('change'))")
                    #expect(try await br.waitFor("const e = document.getElementById('node-error'); return !!e && e.textContent.includes('runs no observer agent')"))
                    #expect(try br.run("return document.getElementById('status').textContent") as? String ?? "" != "live")
                }
            }
            withExtendedLifetime(agent) {}
        }
    }
}

/// `s` as a JavaScript string literal.
func jsString(_ s: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
}
