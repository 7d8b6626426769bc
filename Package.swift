// swift-tools-version:6.1
// Parley: BEAM-style processes and core.async/Go-style channels for Swift, on a scheduler of its own.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    // Async functions run on their caller's executor: no executor hop (and no task-status
    // lock in the Swift runtime) on every receive.
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "parley",
    platforms: [.macOS(.v15)],
    products: [
        // The scheduler, timers and blocking pool: no process semantics.
        .library(name: "ParleyRuntime", targets: ["ParleyRuntime"]),
        // Channels the core.async and Go way: buffers, close, select/alts, go blocks and
        // threads, transducers and combinators (re-exports ParleyRuntime).
        .library(name: "ParleyChannels", targets: ["ParleyChannels"]),
        // Processes, links, monitors, registry, introspection, and select over a mailbox and
        // channels (re-exports ParleyChannels).
        .library(name: "Parley", targets: ["Parley"]),
        // GenServer, Supervisor, DynamicSupervisor, Registry, Task, Agent (re-exports Parley).
        .library(name: "ParleyOTP", targets: ["ParleyOTP"]),
        // A supervision tree as a swift-service-lifecycle Service.
        .library(name: "ParleyServiceLifecycle", targets: ["ParleyServiceLifecycle"]),
        // Erlang's external term format: the Term type, the codec and the Codable bridge, with
        // no networking (re-exports Parley).
        .library(name: "ParleyETF", targets: ["ParleyETF"]),
        // Erlang distribution: EPMD, the handshake and connections, so Parley nodes join
        // Erlang/Elixir clusters and each other (SwiftNIO; with the TLS trait, swift-nio-ssl;
        // re-exports ParleyETF).
        .library(name: "ParleyDistribution", targets: ["ParleyDistribution"]),
        // Clusters that form themselves: libcluster's strategies (EPMD lists, DNS, Kubernetes
        // DNS and DNS SRV, gossip with its AES secret) run as topologies (swift-crypto for
        // the gossip secret).
        .library(name: "ParleyCluster", targets: ["ParleyCluster"]),
        // The observer: a live web dashboard of a node (processes, schedulers, supervision
        // trees) and a Prometheus /metrics endpoint (Hummingbird, swift-prometheus).
        .library(name: "ParleyObserver", targets: ["ParleyObserver"]),
        .executable(name: "parley", targets: ["ParleyCLI"]),
        // The allocation gate: heap allocations per message on the hot paths, against budgets.
        .executable(name: "parley-allocs", targets: ["ParleyAllocations"]),
    ],
    traits: [
        // Distribution over TLS (Erlang's inet_tls_dist shape), with swift-nio-ssl. Off by
        // default: swift-nio-ssl compiles its own BoringSSL, which would double a first
        // build. Turn it on with `swift build --traits TLS`, or in a dependency:
        // `.package(url: ..., from: ..., traits: ["TLS"])`.
        .trait(name: "TLS", description: "Distribution over TLS (swift-nio-ssl)"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // ServiceContext for calls that carry a trace context (Instrumentation, in the core:
        // API only, no backend), and spans for GenServer calls (Tracing, in ParleyOTP).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        // SHA-256 and AES-256-CBC for libcluster's encrypted gossip; only ParleyCluster links it.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // The observer's web server and metrics; only ParleyObserver and the CLI link them.
        // Hummingbird's default traits (swift-configuration, full Foundation) are not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.20.0", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
    ],
    targets: [
        // Three libc calls Swift cannot reach portably (thread names, malloc_usable_size, PAUSE).
        .target(name: "CParleyShims"),
        .target(
            name: "ParleyRuntime",
            dependencies: [
                "CParleyShims",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ParleyChannels",
            dependencies: [
                "ParleyRuntime",
                "CParleyShims",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Parley",
            dependencies: [
                "ParleyRuntime",
                "ParleyChannels",
                "CParleyShims",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ParleyOTP",
            dependencies: [
                "Parley",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ParleyServiceLifecycle",
            dependencies: [
                "ParleyOTP",
                "ParleyDistribution",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // zlib, for compressed terms (ETF tag 80); Debian's zlib1g-dev.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "ParleyETF",
            dependencies: ["Parley", "ParleyRuntime", "CZlib"],
            swiftSettings: strict
        ),
        // The libFuzzer entry point for the term decoder, a library so that every build
        // compiles it; `Fuzz/run` links it with libFuzzer, and a test replays its corpus.
        .target(
            name: "ParleyETFFuzz",
            dependencies: ["ParleyETF"],
            path: "Fuzz/ETFDecoderFuzz",
            swiftSettings: strict
        ),
        .target(
            name: "ParleyDistribution",
            dependencies: [
                "Parley",
                "ParleyOTP",
                "ParleyETF",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"])),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // res_query, for the DNS strategies' A, AAAA and SRV lookups through the system's resolver.
        .target(name: "CParleyResolv"),
        .target(
            name: "ParleyCluster",
            dependencies: [
                "ParleyDistribution",
                "CParleyResolv",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ParleyObserver",
            dependencies: [
                "ParleyOTP",
                "ParleyDistribution",
                "CParleyShims",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ParleyCLI",
            dependencies: [
                "Parley",
                "ParleyOTP",
                "ParleyServiceLifecycle",
                "ParleyDistribution",
                "ParleyCluster",
                "ParleyObserver",
                "CParleyShims",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // Counts the OS process's heap allocations by interposing the C allocator: linked into
        // the allocation gate only.
        .target(name: "CMallocCounter", path: "Benchmarks/CMallocCounter"),
        .executableTarget(
            name: "ParleyAllocations",
            dependencies: ["ParleyOTP", "CMallocCounter"],
            path: "Benchmarks/Allocations",
            swiftSettings: strict
        ),
        .testTarget(name: "ParleyRuntimeTests", dependencies: ["ParleyRuntime"], swiftSettings: strict),
        // Helpers several test targets share (stress scaling, polling).
        // Starts ParleyTestSupport's stall watchdog before any test (PARLEY_STALL_DUMP=1).
        .target(name: "CParleyTestWatchdog", path: "Tests/CParleyTestWatchdog"),
        .target(
            name: "ParleyTestSupport",
            dependencies: ["CParleyTestWatchdog", "ParleyRuntime", .product(name: "Tracing", package: "swift-distributed-tracing")],
            path: "Tests/ParleyTestSupport",
            swiftSettings: strict
        ),
        // The node the distribution tests start as OS processes, with their fixtures (echo,
        // counter, pong, forward); it shares no code with the `parley` command.
        .executableTarget(
            name: "ParleyTestNode",
            dependencies: ["ParleyDistribution", "ParleyCluster", "ParleyOTP", "ParleyServiceLifecycle"],
            path: "Tests/ParleyTestNode",
            swiftSettings: strict
        ),
        // Built as a user's package is: Swift 6 with no other setting (no
        // NonisolatedNonsendingByDefault, no ExistentialAny), so code shaped like the README's
        // compiles and runs from an app that never heard of those settings; every README
        // Swift block is compiled here (ReadmeSnippets.swift, checked by ReadmeSnippetTests).
        .testTarget(
            name: "DefaultSettingsTests",
            dependencies: ["ParleyOTP", "ParleyDistribution", "ParleyCluster", "ParleyObserver", .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(name: "ParleyChannelsTests", dependencies: ["ParleyChannels", "ParleyTestSupport"], swiftSettings: strict),
        .testTarget(name: "ParleyTests", dependencies: ["Parley", "ParleyTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ParleyDistributionTests",
            // ParleyTestNode: the tests start it as separate OS processes, so it must be built
            // beside the test bundle.
            dependencies: [
                "ParleyDistribution", "ParleyCluster", "ParleyETF", "ParleyETFFuzz", "ParleyOTP", "ParleyTestNode", "CZlib", "ParleyTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Erlang"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ParleyObserverTests",
            dependencies: ["ParleyObserver", "ParleyOTP", "ParleyDistribution", "ParleyTestSupport",
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ParleyOTPTests",
            dependencies: [
                "ParleyOTP", "ParleyServiceLifecycle", "CParleyShims", "ParleyTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
    ]
)
