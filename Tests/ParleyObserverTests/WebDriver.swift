import Foundation
import Glibc
import ParleyObserver
import Testing

/// A headless Chromium driven through chromedriver's W3C WebDriver protocol (JSON over
/// HTTP on loopback), for tests that check what a person sees in the observer's page.
/// The chromedriver OS process (and the browser it starts) is removed on every path.
final class Browser: @unchecked Sendable {
    // @unchecked Sendable: `driver` and `session` are set once in init and only read after.
    let port: Int
    let driver: Foundation.Process
    let session: String

    /// Where chromedriver is, if installed (`.ci/run` installs Debian's chromium-driver).
    static var chromedriver: String? {
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Browser tests run with PARLEY_BROWSER_TESTS=1 (CI's browser step, `.ci/run`), where
    /// they must run, so they never pass by not running there; and they fail if chromedriver
    /// is missing. A plain `swift test` leaves them out even where Chromium is installed:
    /// beside the rest of the suite on two cores, Chromium's start starved the scheduler
    /// threads for seconds and calls with gen_server's 5-second default timed out.
    static var available: Bool {
        ProcessInfo.processInfo.environment["PARLEY_BROWSER_TESTS"] == "1"
    }

    init() async throws {
        let path = try #require(Self.chromedriver, "chromedriver is not installed (apt-get install chromium chromium-driver)")
        port = Self.freePort()
        driver = Foundation.Process()
        driver.executableURL = URL(fileURLWithPath: path)
        driver.arguments = ["--port=\(port)", "--allowed-ips=127.0.0.1"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        do {
            var ready = false
            for _ in 0..<200 where !ready {
                if (try? LoopbackHTTP.request(port: port, path: "/status", timeoutSeconds: 2))?.status == 200 { ready = true } else {
                    try await Task.sleep(for: .milliseconds(25))
                }
            }
            try #require(ready, "chromedriver did not start on port \(port)")
            let caps: [String: Any] = ["capabilities": ["alwaysMatch": [
                "browserName": "chrome",
                "goog:chromeOptions": ["args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]],
            ]]]
            let reply = try Self.call(port, "POST", "/session", caps)
            session = try #require((reply["value"] as? [String: Any])?["sessionId"] as? String, "no WebDriver session: \(reply)")
        } catch {
            Self.stop(driver)
            throw error
        }
    }

    /// Ends the session (closing the browser) and stops chromedriver.
    func close() {
        _ = try? Self.call(port, "DELETE", "/session/\(session)", nil)
        Self.stop(driver)
    }

    deinit { Self.stop(driver) }

    /// SIGKILL and wait (chromedriver may outlive SIGTERM while it tears a browser down).
    static func stop(_ p: Foundation.Process) {
        guard p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func open(_ url: String) throws { _ = try command("POST", "url", ["url": url]) }

    /// Runs `script` in the page and returns its result.
    @discardableResult
    func run(_ script: String, _ args: [Any] = []) throws -> Any? {
        try command("POST", "execute/sync", ["script": script, "args": args])["value"] as Any?
    }

    /// Polls `script` (which returns a boolean) for up to 15 s.
    func waitFor(_ script: String) async throws -> Bool {
        for _ in 0..<300 {
            if (try run(script)) as? Bool == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Clicks the first element `css` selects, as a user does (the live page may redraw it
    /// between finding and clicking: a stale element is looked up again).
    func click(_ css: String) async throws {
        for attempt in 0..<10 {
            do {
                let element = try command("POST", "element", ["using": "css selector", "value": css])
                let id = try #require((element["value"] as? [String: Any])?.first { $0.key.hasPrefix("element-") }?.value as? String, "no element \(css)")
                _ = try command("POST", "element/\(id)/click", [:])
                return
            } catch let e as WebDriverError where e.detail.contains("stale element") && attempt < 9 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Saves a PNG of the page as a test artifact: `.build/artifacts/observer/<name>.png` in
    /// the package (CI keeps them; a person looks at them).
    func artifact(_ name: String, file: String = #filePath) throws {
        let root = URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent(".build/artifacts/observer")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try screenshot(to: dir.appendingPathComponent("\(name).png").path)
    }

    /// A PNG of the page, to look at when a test fails.
    func screenshot(to path: String) throws {
        guard let b64 = try command("GET", "screenshot", nil)["value"] as? String, let data = Data(base64Encoded: b64) else { return }
        try data.write(to: URL(fileURLWithPath: path))
    }

    private func command(_ method: String, _ path: String, _ body: [String: Any]?) throws -> [String: Any] {
        try Self.call(port, method, "/session/\(session)/\(path)", body)
    }

    static func call(_ port: Int, _ method: String, _ path: String, _ body: [String: Any]?) throws -> [String: Any] {
        let text = try body.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) } ?? ""
        let reply = try LoopbackHTTP.request(port: port, method: method, path: path,
                                             headers: body == nil ? [] : [("Content-Type", "application/json")], body: text, timeoutSeconds: 30)
        let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8))
        let dict = object as? [String: Any] ?? [:]
        if reply.status >= 400 { throw WebDriverError(status: reply.status, detail: String(reply.body.prefix(300))) }
        return dict
    }

    /// A port nothing listens on now (bound and released; chromedriver takes it next).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

struct WebDriverError: Error { let status: Int; let detail: String }

/// A browser for the length of `body`, closed on every path.
func withBrowser<T>(_ body: (Browser) async throws -> T) async throws -> T {
    let browser = try await Browser()
    do {
        let result = try await body(browser)
        browser.close()
        return result
    } catch {
        try? browser.screenshot(to: "/tmp/parley-observer-failure.png")
        browser.close()
        throw error
    }
}
