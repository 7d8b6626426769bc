// swift-tools-version:6.1
// A chat-rooms service on Parley, written as an app's package is: Swift 6 with its default
// settings, depending on Parley's products by name. CI builds and runs it.
import PackageDescription

let package = Package(
    name: "ChatRooms",
    platforms: [.macOS(.v15)],
    dependencies: [
        // In your app: .package(url: "https://github.com/<owner>/parley", from: "<version>")
        .package(name: "parley", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "ChatRooms",
            dependencies: [
                // GenServer, Supervisor, DynamicSupervisor, Registry (and processes, channels).
                .product(name: "ParleyOTP", package: "parley"),
                // The tree as a swift-service-lifecycle Service (and ServiceGroup, Logger).
                .product(name: "ParleyServiceLifecycle", package: "parley"),
            ]
        ),
    ]
)
