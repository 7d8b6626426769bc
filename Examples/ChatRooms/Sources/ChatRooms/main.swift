// The chat-rooms service: a supervision tree run as a swift-service-lifecycle Service.
//
//   tree (Supervisor, one_for_one)
//   ├── rooms      DynamicSupervisor: one Room GenServer per room, started on demand
//   └── moderator  a process selecting over its mailbox and the lobby's lines
//
// Rooms are named through a Registry, lines flow through a channel pipeline (Feed.swift).
// The run below is scripted so that it ends by itself: two users join the lobby and talk,
// the lobby crashes and is restarted under the same name, the moderator reports, and a
// graceful shutdown stops the tree (SIGTERM or Ctrl-C do the same).
import ParleyServiceLifecycle

let names = Registry<String, Void>(keys: .unique)
let feed = Feed()
let lobbyLines = feed.watch("lobby")
let audit = feed.all()

let tree = SupervisorService(children: [
    DynamicSupervisor.childSpec(id: "rooms", name: .local("rooms")),
    ChildSpec(id: "moderator") { me in me.spawnLink { p in try await moderate(p, lines: lobbyLines) } },
], strategy: .oneForOne)

/// The room called `name`, started under the rooms supervisor if it is not running.
func room(_ name: String) async throws -> ServerRef<Room> {
    let ref = ServerRef<Room>(name: .via(names, name))
    if names.whereisName(name) != nil { return ref }
    guard let rooms = try await tree.child("rooms").pid.map(DynamicSupervisor.init) else { throw ChatError.roomsDown }
    do {
        try await rooms.startChild(Room(name: name, feed: feed).childSpec(id: "room \(name)", name: .via(names, name)))
    } catch {
        // Another caller started it first: the name is taken, which is what we wanted.
        guard names.whereisName(name) != nil else { throw error }
    }
    return ref
}

enum ChatError: Error { case roomsDown, unexpected(Room.Reply) }

/// A user: a process that joins a room, says its lines (then offers to `spoken`), and
/// collects what it hears.
func user(_ me: Process, name: String, room: ServerRef<Room>, says: [String], hears count: Int,
          spoken: Channel<Void>? = nil) async throws -> [String] {
    guard case .joined = try await room.call(.join(user: name, pid: me.pid)) else { throw ChatError.roomsDown }
    for text in says {
        let reply = try await room.call(.say(user: name, text: text))
        guard case .said = reply else { throw ChatError.unexpected(reply) }
    }
    _ = spoken?.offer(())
    var heard: [String] = []
    while heard.count < count, let line = try await me.receive(ChatLine.self, after: .seconds(5)) {
        heard.append(line.description)
    }
    return heard
}

var logger = Logger(label: "chat-rooms")
logger.logLevel = .info
let group = ServiceGroup(services: [tree], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)

try await withThrowingTaskGroup(of: Void.self) { tasks in
    tasks.addTask { try await group.run() }
    let sup = try await tree.started()               // every child is up
    print("tree up: \(try await sup.whichChildren().map(\.id))")

    let lobby = try await room("lobby")
    // Alice joins and says hello; once she has (a promise channel says so), Bob joins and
    // says two lines. Alice hears all three, Bob his own two. Members hear every line as
    // said; the feed (the moderator, the audit log) drops the empty one and masks "darn".
    let aliceSpoke = Channel<Void>(buffer: .promise)
    async let alice = Process.run { me in
        try await user(me, name: "alice", room: lobby, says: ["hello"], hears: 3, spoken: aliceSpoke)
    }
    _ = try await aliceSpoke.receive()
    let bob = try await Process.run { me in try await user(me, name: "bob", room: lobby, says: ["darn it", ""], hears: 2) }
    print("bob heard: \(bob)")
    print("alice heard: \(try await alice)")

    // The lobby crashes; its supervisor restarts it under the same name, and the same
    // ServerRef reaches the new one. Its crash report shows formatStatus's summary only.
    let before = names.whereisName("lobby")
    lobby.cast(.crash)
    while names.whereisName("lobby") == nil || names.whereisName("lobby") == before { try await Task.sleep(for: .milliseconds(5)) }
    print("lobby restarted: members now \(try await lobby.call(.members))")

    // The moderator, asked through its mailbox, reports what it saw on the lobby's channel.
    guard let moderator = try await tree.child("moderator").pid else { throw ChatError.roomsDown }
    let report = try await Process.run { me in
        me.send(ModeratorRequest.report(to: me.pid), to: moderator)
        return try await me.receive([String: Int].self, after: .seconds(5))
    }
    print("moderator saw: \(report.map { $0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } } ?? ["nothing"])")

    var logged: [String] = []
    while let line = audit.poll() { logged.append(line.description) }
    print("audit log: \(logged)")

    await group.triggerGracefulShutdown()
    try await tasks.waitForAll()
}
print("chat-rooms: done")
