/// GPT-2's reversible byte -> printable-character map (openai/gpt-2 encoder.py `bytes_to_unicode`).
///
/// Bytes that are printable Latin-1 ('!'...'~', '¡'...'¬', '®'...'ÿ') map to themselves; the other
/// 68 map, in byte order, to U+0100, U+0101, ... so every byte becomes a visible character.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable =
                (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in byteToScalar.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    /// The byte-level spelling of `text`'s UTF-8 bytes.
    static func encode(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for byte in text.utf8 { result.append(byteToScalar[Int(byte)]) }
        return String(result)
    }

    /// Bytes of a byte-level string; characters outside the table contribute their own UTF-8.
    static func decodeBytes(_ text: String, into bytes: inout [UInt8]) {
        for scalar in text.unicodeScalars {
            if let byte = scalarToByte[scalar.value] {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: Array(String(scalar).utf8))
            }
        }
    }
}
