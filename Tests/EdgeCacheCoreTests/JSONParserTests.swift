import EdgeCacheCore
import Testing

@Suite struct JSONParserTests {
    func parse(_ text: String, maxDepth: Int = 64) throws -> JSONValue {
        try JSONParser.parse(Array(text.utf8), maxDepth: maxDepth)
    }

    @Test func keepsMemberOrderAndNumberText() throws {
        let value = try parse(#"{"b":1.50,"a":[true,false,null],"c":"x\ny","d":-0.0e+10}"#)
        #expect(String(decoding: value.serialized(), as: UTF8.self) == #"{"b":1.50,"a":[true,false,null],"c":"x\ny","d":-0.0e+10}"#)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let value = try parse(#"["\u00e9\ud83d\ude00\"\\\/\b\f\r\t"]"#)
        #expect(value == .array([.string("é😀\"\\/\u{08}\u{0C}\r\t")]))
    }

    @Test(arguments: [
        "", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", ".5", "-", "1e", "tru", "nul", "\"abc",
        "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "{\"a\":1}x", "[1 2]", "\"tab\there\"", "{1:2}", "'a'", "NaN",
        "{\"a\":1,\"a\":2}",
    ])
    func rejectsMalformedJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func nestingLimitIsSixtyFourLevels() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        _ = try parse(ok)
        #expect(throws: JSONParseError.self) { try parse(tooDeep) }
        let deepObject = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try parse(deepObject) }
        // Far deeper input must fail cleanly, not overflow the stack.
        #expect(throws: JSONParseError.self) { try parse(String(repeating: "[", count: 200_000)) }
    }

    /// Property: any generated value survives serialize → parse unchanged.
    @Test func roundTripsGeneratedValues() throws {
        var rng = SeededRandom(seed: 42)
        for _ in 0..<2000 {
            let value = JSONGenerator.value(&rng, depth: 0)
            #expect(try JSONParser.parse(value.serialized()) == value)
        }
    }

    /// Fuzz: random bytes and mutations of valid documents never trap.
    @Test func survivesRandomAndMutatedInput() {
        var rng = SeededRandom(seed: 7)
        let seeds = (0..<50).map { _ in JSONGenerator.value(&rng, depth: 0).serialized() }
        for i in 0..<20_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
                for _ in 0..<1 + Int(rng.next() % 4) where !bytes.isEmpty {
                    let index = Int(rng.next() % UInt64(bytes.count))
                    switch rng.next() % 3 {
                    case 0: bytes[index] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: bytes.remove(at: index)
                    default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: index)
                    }
                }
            }
            _ = try? JSONParser.parse(bytes)
        }
    }
}

/// A small deterministic PRNG (SplitMix64) for property tests.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum JSONGenerator {
    static let alphabet = Array("aZ09 \"\\/\n\t\u{01}é😀{}[],:")

    static func string(_ rng: inout SeededRandom) -> String {
        String((0..<Int(rng.next() % 8)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
    }

    static func value(_ rng: inout SeededRandom, depth: Int) -> JSONValue {
        switch rng.next() % (depth > 4 ? 4 : 6) {
        case 0: return .null
        case 1: return .bool(rng.next() % 2 == 0)
        case 2: return .number(["0", "-1", "3.14", "1e10", "-2.50E-3", "123456789012345678901234567890"][Int(rng.next() % 6)])
        case 3: return .string(string(&rng))
        case 4: return .array((0..<Int(rng.next() % 4)).map { _ in value(&rng, depth: depth + 1) })
        default:
            var object = JSONObject()
            for i in 0..<Int(rng.next() % 4) { object["k\(i)" + string(&rng)] = value(&rng, depth: depth + 1) }
            return .object(object)
        }
    }
}

/// `JSONParser.members(of:keeping:)`: a search parses only the elements it decides on.
@Suite struct JSONPartialParseTests {
    @Test func keptMembersEqualAFullParseWhateverTheSkippedValuesHold() throws {
        let text = #"""
            {"resourceType":"Observation","text":{"div":"<div>a \"quoted\" } ] { [ , value</div>"},"n":-1.5e3,"t":true,
             "nested":[{"a":[1,[2,{"b":"\\"}]]}],"x":null,"effectiveDateTime":"2024-01-01","valueQuantity":{"value":1},"s":"\u00e9,}"}
            """#
        let bytes = Array(text.utf8)
        guard case .object(let full) = try JSONParser.parse(bytes) else { Issue.record("not an object"); return }
        for (names, keep) in [
            (["effective"], ["effectiveDateTime"]), (["value", "s"], ["valueQuantity", "s"]),
            (["resourceType", "x", "t", "n"], ["resourceType", "x", "t", "n"]), (["nested"], ["nested"]), ([], []), (["tex"], []),
        ] {
            let part = try JSONParser.members(of: bytes, named: names.map { Array($0.utf8) })
            #expect(part.members.map(\.key) == full.members.map(\.key).filter(keep.contains), "\(keep)")
            for key in keep { #expect(part[key] == full[key], "\(key)") }
        }
        #expect(throws: JSONParseError.self) { _ = try JSONParser.members(of: Array(#"{"a":"unterminated}"#.utf8), named: []) }
        #expect(throws: JSONParseError.self) { _ = try JSONParser.members(of: Array("[1]".utf8), named: []) }
    }

    @Test func duplicateNamesAreRefusedInSmallAndLargeObjects() {
        for n in [2, 11, 12, 13, 30] {
            let members = (0..<n).map { #""k\#($0)":\#($0)"# } + [#""k\#(n - 1)":0"#]
            #expect(throws: JSONParseError.self, "\(n)") { _ = try JSONParser.parse(Array("{\(members.joined(separator: ","))}".utf8)) }
            let distinct = (0..<n).map { #""k\#($0)":\#($0)"# }
            #expect(throws: Never.self) { _ = try JSONParser.parse(Array("{\(distinct.joined(separator: ","))}".utf8)) }
        }
    }
}
