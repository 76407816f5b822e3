import Foundation

/// TensorBoard event files (`report_to: tensorboard`): each logged metric as a scalar.
///
/// An event file is a sequence of TFRecords (length, masked CRC-32C of the length, the bytes, their
/// masked CRC-32C), each holding one `Event` protocol buffer: first the file version, then one
/// event per logged step with a `Summary` of `simple_value`s tagged by metric name.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle
    private let clock: () -> Double

    /// Starts `folder/events.out.tfevents.TIME.HOST` (a new file each run, as TensorBoard expects).
    ///
    /// A resumed run passes `purgeFrom`, the first step it will log: a SessionLog START event at
    /// that step tells TensorBoard to drop what earlier files logged from there on (the steps the
    /// interrupted run logged after its last checkpoint), as PyTorch's `purge_step` does.
    public init(
        folder: String, purgeFrom: Int? = nil,
        clock: @escaping () -> Double = { Date().timeIntervalSince1970 }
    ) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        self.clock = clock
        let now = clock()
        let host = ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName
        var name = "\(folder)/events.out.tfevents.\(Int(now)).\(host)"
        var suffix = 1
        while FileManager.default.fileExists(atPath: name) {
            name = "\(folder)/events.out.tfevents.\(Int(now)).\(host).\(suffix)"
            suffix += 1
        }
        path = name
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else {
            throw CheckpointError.saveFailed(folder: path, reason: "cannot create the TensorBoard event file")
        }
        self.handle = handle
        try handle.write(contentsOf: Self.record(Self.versionEvent(wallTime: now)))
        if let purgeFrom {
            try handle.write(contentsOf: Self.record(Self.restartEvent(wallTime: clock(), step: purgeFrom)))
        }
    }

    deinit { try? handle.close() }

    /// Appends one event at `step` with every finite metric as a scalar, tags sorted.
    public func add(_ metrics: [String: Double], step: Int) throws {
        let scalars = metrics.filter { $0.value.isFinite }.sorted { $0.key < $1.key }
        guard !scalars.isEmpty else { return }
        try handle.write(
            contentsOf: Self.record(
                Self.scalarEvent(
                    wallTime: clock(), step: step, scalars: scalars.map { ($0.key, Float($0.value)) })))
    }

    // MARK: - Encoding

    static func versionEvent(wallTime: Double) -> [UInt8] {
        var event = Protobuf()
        event.double(field: 1, wallTime)
        event.bytes(field: 3, Array("brain.Event:2".utf8))
        return event.bytes
    }

    /// SessionLog { status: START } at `step`.
    static func restartEvent(wallTime: Double, step: Int) -> [UInt8] {
        var sessionLog = Protobuf()
        sessionLog.varint(field: 1, 1)
        var event = Protobuf()
        event.double(field: 1, wallTime)
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.bytes(field: 7, sessionLog.bytes)
        return event.bytes
    }

    static func scalarEvent(wallTime: Double, step: Int, scalars: [(String, Float)]) -> [UInt8] {
        var summary = Protobuf()
        for (tag, value) in scalars {
            var entry = Protobuf()
            entry.bytes(field: 1, Array(tag.utf8))
            entry.float(field: 2, value)
            summary.bytes(field: 1, entry.bytes)
        }
        var event = Protobuf()
        event.double(field: 1, wallTime)
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.bytes(field: 5, summary.bytes)
        return event.bytes
    }

    /// One TFRecord around `data`.
    static func record(_ data: [UInt8]) -> Data {
        var length = [UInt8]()
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { length.append(contentsOf: $0) }
        var out = Data(length)
        withUnsafeBytes(of: maskedCRC(length).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: data)
        withUnsafeBytes(of: maskedCRC(data).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// TFRecord's masked CRC-32C.
    static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = crc32c(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
        return value
    }

    /// CRC-32C (Castagnoli), reflected, as TFRecord uses.
    static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

/// The few protocol-buffer wire types an event needs, fields written in the order given.
struct Protobuf {
    var bytes: [UInt8] = []

    mutating func key(_ field: Int, _ wireType: UInt64) { append(varint: UInt64(field) << 3 | wireType) }

    mutating func append(varint value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func varint(field: Int, _ value: UInt64) {
        key(field, 0)
        append(varint: value)
    }

    mutating func double(field: Int, _ value: Double) {
        key(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func float(field: Int, _ value: Float) {
        key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func bytes(field: Int, _ value: [UInt8]) {
        key(field, 2)
        append(varint: UInt64(value.count))
        bytes.append(contentsOf: value)
    }
}
