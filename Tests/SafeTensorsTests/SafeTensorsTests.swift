import Foundation
import SafeTensors
import Testing

private func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "safetensors-tests-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A file made by hand: 8-byte length, header text, data bytes.
private func rawFile(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> String {
    let path = temporaryDirectory() + "/bad.safetensors"
    var bytes = Data()
    var length = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
    bytes.append(Data(bytes: &length, count: 8))
    bytes.append(header.data(using: .utf8)!)
    bytes.append(contentsOf: data)
    try! bytes.write(to: URL(fileURLWithPath: path))
    return path
}

@Test(arguments: [DType.f32, .bf16, .f16])
func writeThenReadRoundTrips(dtype: DType) throws {
    let values: [Float] = [0, 1, -2.5, 3.140625, 1e-3, -65504, 0.099975586]
    let other: [Float] = [7, 8]
    let path = temporaryDirectory() + "/model.safetensors"
    try values.withUnsafeBufferPointer { v in
        try other.withUnsafeBufferPointer { o in
            try SafeTensorsWriter.write(
                [
                    TensorToWrite(name: "b", shape: [7], values: v),
                    TensorToWrite(name: "a", shape: [1, 2], values: o),
                ],
                dtype: dtype, to: path)
        }
    }
    let file = try SafeTensorsFile(path: path)
    #expect(file.tensors["a"]?.shape == [1, 2])
    #expect(file.tensors["b"]?.dtype == dtype)
    #expect(file.metadata["format"] == "pt")
    let read = try file.floats("b")
    let tolerance: Float = dtype == .f32 ? 0 : (dtype == .bf16 ? 1 / 128 : 1 / 1024)
    for (got, want) in zip(read, values) { #expect(abs(got - want) <= tolerance * max(abs(want), 1e-3)) }
    #expect(try file.floats("a") == other)
}

@Test func halfPrecisionConversionsMatchKnownBitPatterns() {
    #expect(floatToBFloat16(1) == 0x3F80)
    #expect(floatToBFloat16(-2) == 0xC000)
    #expect(floatToBFloat16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie rounds to even
    #expect(floatToBFloat16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
    #expect(bfloat16ToFloat(0x4049) == 3.140625)
    #expect(floatToFloat16(1) == 0x3C00)
    #expect(floatToFloat16(65504) == 0x7BFF)
    #expect(floatToFloat16(1e6) == 0x7C00)
    #expect(floatToFloat16(0x1p-24) == 0x0001)
    #expect(float16ToFloat(0x0001) == 0x1p-24)
    #expect(float16ToFloat(0xC400) == -4)
    for bits in stride(from: UInt16(0), to: 0x7C00, by: 7) {
        #expect(floatToFloat16(float16ToFloat(bits)) == bits)
    }
}

@Test func corruptFilesGiveErrorsNamingTheProblem() throws {
    let good = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    let cases: [(String, (SafeTensorsError) -> Bool)] = [
        (
            rawFile(header: good, data: [0, 0, 0, 0, 0, 0, 0, 0], declaredLength: 10_000),
            {
                if case .truncated = $0 { return true } else { return false }
            }
        ),
        (
            rawFile(header: "{\"w\": [1,", data: []),
            {
                if case .malformedHeader = $0 { return true } else { return false }
            }
        ),
        (
            rawFile(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0]),
            {
                if case .badOffsets(_, "w", let reason) = $0 {
                    return reason.contains("past")
                } else {
                    return false
                }
            }
        ),
        (
            rawFile(
                header: #"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
                data: [UInt8](repeating: 0, count: 8)),
            {
                if case .unknownDType(_, "w", "Q4") = $0 { return true } else { return false }
            }
        ),
        (
            rawFile(
                header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                data: [UInt8](repeating: 0, count: 8)),
            {
                if case .badOffsets(_, "w", let reason) = $0 {
                    return reason.contains("needs 12 bytes")
                } else {
                    return false
                }
            }
        ),
        (
            // 2^31 x 2^31 elements fit in Int; their bytes do not (the check must not trap).
            rawFile(
                header: #"{"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,8]}}"#,
                data: [UInt8](repeating: 0, count: 8)),
            {
                if case .badOffsets(_, "w", let reason) = $0 {
                    return reason.contains("needs more than 2^63 bytes")
                } else {
                    return false
                }
            }
        ),
        (
            rawFile(header: #"{"w":{"dtype":"F32","shape":[2]}}"#, data: []),
            {
                if case .malformedHeader = $0 { return true } else { return false }
            }
        ),
    ]
    for (path, matches) in cases {
        do {
            _ = try SafeTensorsFile(path: path)
            Issue.record("\(path) loaded without error")
        } catch let error as SafeTensorsError {
            #expect(matches(error), "unexpected error \(error)")
            #expect(error.description.contains(path), "error does not name the file: \(error)")
        }
    }
    let tiny = temporaryDirectory() + "/tiny.safetensors"
    try Data([1, 2, 3]).write(to: URL(fileURLWithPath: tiny))
    #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: tiny) }
}

@Test func missingTensorAndIntegerDTypeAreErrors() throws {
    let path = rawFile(
        header: #"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
        data: [UInt8](repeating: 0, count: 8))
    let file = try SafeTensorsFile(path: path)
    #expect(throws: SafeTensorsError.missingTensor(name: "nope", path: path)) { try file.floats("nope") }
    #expect(throws: SafeTensorsError.unsupportedDType(path: path, tensor: "ids", dtype: "I64")) {
        try file.floats("ids")
    }
}

@Test func shardedIndexResolvesEveryName() throws {
    let folder = temporaryDirectory()
    let a: [Float] = [1, 2]
    let b: [Float] = [3]
    try a.withUnsafeBufferPointer {
        try SafeTensorsWriter.write(
            [TensorToWrite(name: "x", shape: [2], values: $0)],
            to: folder + "/model-00001-of-00002.safetensors")
    }
    try b.withUnsafeBufferPointer {
        try SafeTensorsWriter.write(
            [TensorToWrite(name: "y", shape: [1], values: $0)], dtype: .bf16,
            to: folder + "/model-00002-of-00002.safetensors")
    }
    let index =
        #"{"metadata":{"total_size":10},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}}"#
    try index.write(toFile: folder + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
    let collection = try SafeTensorsCollection(folder: folder)
    #expect(collection.names == ["x", "y"])
    var y: [Float] = [0]
    try y.withUnsafeMutableBufferPointer { try collection.read("y", into: $0) }
    #expect(y == [3])
    #expect(throws: SafeTensorsError.self) { try collection.file(for: "z") }
}

@Test func failedWriteLeavesThePreviousFileIntact() throws {
    let path = temporaryDirectory() + "/model.safetensors"
    try Data("previous".utf8).write(to: URL(fileURLWithPath: path))
    struct Interrupted: Error {}
    #expect(throws: SafeTensorsError.self) {
        try atomicWrite(to: path) { handle in
            try handle.write(contentsOf: Data("partial".utf8))
            throw Interrupted()
        }
    }
    #expect(String(data: FileManager.default.contents(atPath: path)!, encoding: .utf8) == "previous")
    let leftovers = try FileManager.default.contentsOfDirectory(
        atPath: (path as NSString).deletingLastPathComponent)
    #expect(leftovers == ["model.safetensors"])
}
