import Foundation
import Testing

@Suite("README: every Swift block compiles as a user's code")
struct ReadmeSnippetTests {
    /// A block's lines as compared: leading and trailing spaces dropped, blank lines and
    /// imports left out (imports must sit at the top of a file).
    static func normalized<S: StringProtocol>(_ lines: [S]) -> [String] {
        lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("import ") }
    }

    /// The README's ```swift blocks, each as its lines.
    static func readmeBlocks(_ text: String) -> [[Substring]] {
        var blocks: [[Substring]] = []
        var current: [Substring]? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if current == nil, t == "```swift" {
                current = []
            } else if current != nil, t == "```" {
                blocks.append(current!)
                current = nil
            } else if current != nil {
                current!.append(line)
            }
        }
        return blocks
    }

    @Test("each ```swift block of README.md is in ReadmeSnippets.swift, line for line, so CI compiles it with a user's settings")
    func everyBlockIsCompiled() throws {
        let here = URL(fileURLWithPath: #filePath)
        let readme = try String(contentsOf: here.deletingLastPathComponent().appendingPathComponent("../../README.md").standardized, encoding: .utf8)
        let snippets = Self.normalized(try String(contentsOf: here.deletingLastPathComponent().appendingPathComponent("ReadmeSnippets.swift"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false))
        let blocks = Self.readmeBlocks(readme)
        #expect(blocks.count >= 10, "the README's Swift blocks were found")
        for (i, block) in blocks.enumerated() {
            let lines = Self.normalized(block)
            let found = lines.isEmpty || (0...max(0, snippets.count - lines.count)).contains { start in
                start + lines.count <= snippets.count && Array(snippets[start..<start + lines.count]) == lines
            }
            #expect(found, "README block \(i + 1) (starting \"\(lines.first ?? "")\") is not in Tests/DefaultSettingsTests/ReadmeSnippets.swift: copy it there, inside a function, so it is compiled")
        }
    }
}
