#if !canImport(Accelerate)
    import CDNNL
    import Foundation

    /// oneDNN's matmul primitive: `y = x Wᵀ` in float32 on skinny shapes (decoding: a few dozen
    /// rows), and every bf16 product (bf16 operands, float32 result).
    ///
    /// Measured here at 32 rows (32 x 576 -> 3072): the primitive's brgemm kernels reach ~330 GFLOP/s
    /// where `dnnl_sgemm` reaches ~170-210, so linear layers with few rows go through it. One
    /// primitive per shape and layout is created on first use and kept (up to `capacity`; then the
    /// cache starts over), with memory objects whose data handles are pointed at each call's buffers.
    ///
    /// A primitive's shape is fixed (oneDNN 2.6 runs a runtime row count on its slow `gemm:jit`
    /// path, 2-3x slower here), and each holds its JIT kernels, ~120 KB on the C heap. Row counts
    /// change with every packed batch and decoding wave, so one primitive per count grew without
    /// bound (~100 MiB over a 40-step demo). Products are therefore cut into pieces from a fixed
    /// set of lengths (`pieces`): rows of x and y, or for dW-shaped products (A stored transposed)
    /// runs of the inner dimension, added up in C. Each shape then needs at most ~80 primitives,
    /// made in the first steps; the cut depends only on the length, so results are reproducible.
    /// oneDNN's own primitive cache is turned off (this one holds what is reused), so what is
    /// evicted is freed, and what the kept primitives hold is measured (`heldBytes`).
    ///
    /// bf16 weights can also be prepacked: laid out once in the blocked format oneDNN's kernels
    /// read (the one a primitive made with weight format `any` asks for; measured the same for
    /// every row count, so one packed copy serves decoding and training), which saves the kernels
    /// repacking them on every call: 1.15-1.4x at decoding's 32 rows, ~5% at 2048.
    final class MatmulPrimitives: @unchecked Sendable {
        static let shared = MatmulPrimitives()
        static let capacity = 1024

        /// A product C (M, N) (+)= A (M, K) · B (K, N), each operand dense, A stored (K, M) when
        /// `transA` and B stored (N, K) when `transB`.
        private struct Key: Hashable {
            var m: Int
            var n: Int
            var k: Int
            let bf16: Bool
            let transA: Bool
            let transB: Bool
            var accumulate: Bool
            /// B is a prepacked weight (`packedFormat(n:k:)`), for y = x Wᵀ.
            var packed = false
            /// Independent products of this shape, operands one after another (3-D tensors).
            var batch = 1
        }

        private struct Shape: Hashable {
            let n: Int
            let k: Int
        }

        private struct Entry {
            let primitive: dnnl_primitive_t
            let source: dnnl_memory_t
            let weights: dnnl_memory_t
            let destination: dnnl_memory_t
            /// C-heap bytes its creation took (its JIT kernels and descriptors).
            var bytes = 0
        }

        private var engine: dnnl_engine_t?
        private var stream: dnnl_stream_t?
        private var entries: [Key: Entry] = [:]
        /// Shapes whose primitive could not be made (bf16 on a CPU without it), not tried again.
        private var unavailable: Set<Key> = []
        /// The packed weight layout of each (N, K), nil where it could not be found.
        private var packedFormats: [Shape: dnnl_memory_desc_t?] = [:]
        /// Reorders between (N, K) row-major bf16 and the packed layout, `true` for packing.
        private var reorders: [Shape: [Bool: dnnl_primitive_t]] = [:]
        private let lock = NSLock()
        private var entryBytes = 0

        private init() {
            // This cache keeps what is reused; oneDNN's would keep evicted kernels alive.
            dnnl_set_primitive_cache_capacity(0)
            var engine: dnnl_engine_t?
            var stream: dnnl_stream_t?
            if dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success,
                dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success
            {
                self.engine = engine
                self.stream = stream
            }
        }

        /// y (M, N) = x (M, K) · wᵀ with w stored (N, K); false if the primitive is unavailable.
        func run(
            m: Int, n: Int, k: Int, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
            y: UnsafeMutablePointer<Float>
        )
            -> Bool
        {
            execute(
                Key(m: m, n: n, k: k, bf16: false, transA: false, transB: true, accumulate: false),
                UnsafeRawPointer(x), UnsafeRawPointer(w), y)
        }

        /// C (M, N) (+= when `accumulate`) op(A) (M, K) · op(B) (K, N) with bf16 operands and a
        /// float32 C; false if the primitive is unavailable (no bf16 support).
        func runBF16(
            transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>,
            b: UnsafePointer<UInt16>, accumulate: Bool, c: UnsafeMutablePointer<Float>
        ) -> Bool {
            execute(
                Key(m: m, n: n, k: k, bf16: true, transA: transA, transB: transB, accumulate: accumulate),
                UnsafeRawPointer(a), UnsafeRawPointer(b), c)
        }

        /// y (M, N) = x (M, K) Wᵀ with bf16 x and W prepacked (`pack`); false if unavailable.
        func runBF16Packed(
            m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>, packed: UnsafeRawPointer,
            c: UnsafeMutablePointer<Float>
        ) -> Bool {
            var key = Key(m: m, n: n, k: k, bf16: true, transA: false, transB: true, accumulate: false)
            key.packed = true
            return execute(key, UnsafeRawPointer(a), packed, c)
        }

        /// C[i] (M, N) = op(A[i]) · op(B[i]) for i < batch; false if unavailable.
        ///
        /// Each operand is `batch` dense matrices one after another (float32 or bf16, C float32).
        /// The batch runs in chunks of powers of two, so few distinct primitives serve any batch.
        func runBatched(
            bf16: Bool, batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafeRawPointer,
            b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>
        ) -> Bool {
            let element = bf16 ? 2 : 4
            var done = 0
            while done < batch {
                var chunk = 1
                while chunk * 2 <= batch - done && chunk < 256 { chunk *= 2 }
                var key = Key(m: m, n: n, k: k, bf16: bf16, transA: transA, transB: transB, accumulate: false)
                key.batch = chunk
                lock.lock()
                let ran = executeWhole(
                    key, a + done * m * k * element, b + done * k * n * element, c + done * m * n)
                lock.unlock()
                guard ran else { return false }
                done += chunk
            }
            return true
        }

        /// C-heap bytes the kept primitives took when they were made (glibc's count of bytes in use
        /// before and after each creation, under this cache's lock).
        var heldBytes: Int {
            lock.lock()
            defer { lock.unlock() }
            return entryBytes
        }

        /// How many primitives are kept for products with N outputs and inner length K.
        func count(n: Int, k: Int) -> Int {
            lock.lock()
            defer { lock.unlock() }
            return entries.keys.filter { $0.n == n && $0.k == k }.count
        }

        /// The lengths a product's rows (or inner dimension) are cut into.
        ///
        /// Up to 64 as they are, then a multiple of 32 (to 512), 256 (to 4,096) or 2,048 followed by
        /// the rest cut the same way: at most ~80 distinct lengths up to 16K and at most four pieces.
        /// The price, measured on 3072 x 576 products: from 65 to 512 rows the remainder's extra pass
        /// over the weights costs 8-20% of the product; above 512 rows, within noise.
        static func pieces(_ length: Int) -> [Int] {
            var pieces: [Int] = []
            var left = length
            while left > 64 {
                let step = left <= 512 ? 32 : left <= 4096 ? 256 : 2048
                let head = left / step * step
                pieces.append(head)
                left -= head
            }
            if left > 0 { pieces.append(left) }
            return pieces
        }

        /// Bytes of W (N, K) packed, nil where packing is unavailable (no bf16 kernels).
        func packedBytes(n: Int, k: Int) -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard var format = packedFormat(Shape(n: n, k: k)) else { return nil }
            return dnnl_memory_desc_get_size(&format)
        }

        /// Lays out W (N, K) row-major bf16 in the packed format (`packedBytes` bytes), or back
        /// (`unpack`); false if unavailable.
        func reorder(
            n: Int, k: Int, rowMajor: UnsafeMutablePointer<UInt16>, packed: UnsafeMutableRawPointer,
            unpack: Bool = false
        )
            -> Bool
        {
            lock.lock()
            defer { lock.unlock() }
            let shape = Shape(n: n, k: k)
            guard let engine, let format = packedFormat(shape),
                let plain = Self.memoryDescriptor([k, n], dnnl_bf16, dnnl_ba)
            else { return false }
            let packing = !unpack
            var (fromFormat, toFormat) = packing ? (plain, format) : (format, plain)
            var primitive = reorders[shape]?[packing]
            if primitive == nil {
                var descriptor: dnnl_primitive_desc_t?
                let made = dnnl_reorder_primitive_desc_create(
                    &descriptor, &fromFormat, engine, &toFormat, engine, nil)
                guard made == dnnl_success else { return false }
                defer { dnnl_primitive_desc_destroy(descriptor) }
                guard dnnl_primitive_create(&primitive, descriptor) == dnnl_success else { return false }
                reorders[shape, default: [:]][packing] = primitive
            }
            var from: dnnl_memory_t?
            var to: dnnl_memory_t?
            defer {
                if let from { dnnl_memory_destroy(from) }
                if let to { dnnl_memory_destroy(to) }
            }
            let (source, destination) =
                packing
                ? (UnsafeMutableRawPointer(rowMajor), packed) : (packed, UnsafeMutableRawPointer(rowMajor))
            guard dnnl_memory_create(&from, &fromFormat, engine, source) == dnnl_success,
                dnnl_memory_create(&to, &toFormat, engine, destination) == dnnl_success
            else { return false }
            var args = [
                dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from),
                dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to),
            ]
            guard dnnl_primitive_execute(primitive, stream, 2, &args) == dnnl_success else { return false }
            return dnnl_stream_wait(stream) == dnnl_success
        }

        /// The weight layout a bf16 primitive for y = x Wᵀ picks (format `any`), when it is one of
        /// oneDNN's optimised kernels (never its reference implementation).
        private func packedFormat(_ shape: Shape) -> dnnl_memory_desc_t? {
            if let known = packedFormats[shape] { return known }
            var found: dnnl_memory_desc_t?
            defer { packedFormats[shape] = found }
            guard var source = Self.memoryDescriptor([32, shape.k], dnnl_bf16, dnnl_ab),
                var weights = Self.memoryDescriptor([shape.k, shape.n], dnnl_bf16, dnnl_format_tag_any),
                var destination = Self.memoryDescriptor([32, shape.n], dnnl_f32, dnnl_ab),
                let primitiveDescriptor = matmulDescriptor(&source, &weights, &destination)
            else { return nil }
            defer { dnnl_primitive_desc_destroy(primitiveDescriptor) }
            guard !Self.isReference(primitiveDescriptor),
                let chosen = dnnl_primitive_desc_query_md(primitiveDescriptor, dnnl_query_weights_md, 0)
            else { return nil }
            found = chosen.pointee
            return found
        }

        /// A 2-D or 3-D memory descriptor of `dims` in `tag`'s layout.
        private static func memoryDescriptor(
            _ dims: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t
        ) -> dnnl_memory_desc_t? {
            var descriptor = dnnl_memory_desc_t()
            guard
                dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), dims.map(Int64.init), type, tag)
                    == dnnl_success
            else { return nil }
            return descriptor
        }

        /// A matmul primitive descriptor for these operands (the caller destroys it), nil when
        /// oneDNN has none.
        private func matmulDescriptor(
            _ source: inout dnnl_memory_desc_t, _ weights: inout dnnl_memory_desc_t,
            _ destination: inout dnnl_memory_desc_t, attributes: dnnl_primitive_attr_t? = nil
        ) -> dnnl_primitive_desc_t? {
            guard let engine else { return nil }
            var descriptor = dnnl_matmul_desc_t()
            var primitiveDescriptor: dnnl_primitive_desc_t?
            guard dnnl_matmul_desc_init(&descriptor, &source, &weights, nil, &destination) == dnnl_success,
                dnnl_primitive_desc_create(&primitiveDescriptor, &descriptor, attributes, engine, nil)
                    == dnnl_success
            else { return nil }
            return primitiveDescriptor
        }

        /// Whether oneDNN fell back to its slow reference implementation.
        private static func isReference(_ descriptor: dnnl_primitive_desc_t?) -> Bool {
            var name: UnsafePointer<CChar>?
            guard dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name) == dnnl_success,
                let name
            else { return true }
            return String(cString: name).hasPrefix("ref")
        }

        /// Runs the product as `pieces`: rows of A and C when A is stored (M, K); runs of K (each
        /// piece after the first adding to C) when A is stored (K, M) and B (K, N); whole otherwise.
        private func execute(
            _ key: Key, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ c: UnsafeMutablePointer<Float>
        ) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            let element = key.bf16 ? 2 : 4
            if !key.transA {
                var row = 0
                for rows in Self.pieces(key.m) {
                    var piece = key
                    piece.m = rows
                    guard executeWhole(piece, a + row * key.k * element, b, c + row * key.n) else {
                        return false
                    }
                    row += rows
                }
                return true
            }
            if !key.transB {
                var offset = 0
                for (index, length) in Self.pieces(key.k).enumerated() {
                    var piece = key
                    piece.k = length
                    piece.accumulate = key.accumulate || index > 0
                    let (aPiece, bPiece) = (a + offset * key.m * element, b + offset * key.n * element)
                    guard executeWhole(piece, aPiece, bPiece, c) else { return false }
                    offset += length
                }
                return true
            }
            return executeWhole(key, a, b, c)
        }

        /// Runs one primitive for the whole of `key` (the caller holds the lock).
        private func executeWhole(
            _ key: Key, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ c: UnsafeMutablePointer<Float>
        ) -> Bool {
            guard let entry = entry(key) else { return false }
            dnnl_memory_set_data_handle(entry.source, UnsafeMutableRawPointer(mutating: a))
            dnnl_memory_set_data_handle(entry.weights, UnsafeMutableRawPointer(mutating: b))
            dnnl_memory_set_data_handle(entry.destination, UnsafeMutableRawPointer(c))
            var args = [
                dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: entry.source),
                dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: entry.weights),
                dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: entry.destination),
            ]
            guard dnnl_primitive_execute(entry.primitive, stream, 3, &args) == dnnl_success else {
                return false
            }
            return dnnl_stream_wait(stream) == dnnl_success
        }

        private func entry(_ key: Key) -> Entry? {
            if let entry = entries[key] { return entry }
            if unavailable.contains(key) { return nil }
            if entries.count >= Self.capacity {
                for old in entries.values {
                    dnnl_primitive_destroy(old.primitive)
                    dnnl_memory_destroy(old.source)
                    dnnl_memory_destroy(old.weights)
                    dnnl_memory_destroy(old.destination)
                }
                entries.removeAll()
                entryBytes = 0
            }
            let before = heapBytesInUse()
            guard var entry = makeEntry(key) else {
                unavailable.insert(key)
                return nil
            }
            entry.bytes = max(0, heapBytesInUse() - before)
            entryBytes += entry.bytes
            entries[key] = entry
            return entry
        }

        private func makeEntry(_ key: Key) -> Entry? {
            guard let engine else { return nil }
            let type = key.bf16 ? dnnl_bf16 : dnnl_f32
            // A is M x K ("ab"; "ba" when stored transposed); B is K x N, "ba" when stored (N, K).
            // A batch adds a leading dimension ("abc", "acb" transposed).
            let batched = key.batch > 1
            let (plain, transposed) = batched ? (dnnl_abc, dnnl_acb) : (dnnl_ab, dnnl_ba)
            let lead = batched ? [key.batch] : []
            guard
                var source = Self.memoryDescriptor(
                    lead + [key.m, key.k], type, key.transA ? transposed : plain),
                var weights = key.packed
                    ? packedFormat(Shape(n: key.n, k: key.k))
                    : Self.memoryDescriptor(lead + [key.k, key.n], type, key.transB ? transposed : plain),
                var destination = Self.memoryDescriptor(lead + [key.m, key.n], dnnl_f32, plain)
            else { return nil }
            var attributes: dnnl_primitive_attr_t?
            var postOps: dnnl_post_ops_t?
            defer {
                if let attributes { dnnl_primitive_attr_destroy(attributes) }
                if let postOps { dnnl_post_ops_destroy(postOps) }
            }
            if key.accumulate {
                guard dnnl_primitive_attr_create(&attributes) == dnnl_success,
                    dnnl_post_ops_create(&postOps) == dnnl_success,
                    dnnl_post_ops_append_sum(postOps, 1) == dnnl_success,
                    dnnl_primitive_attr_set_post_ops(attributes, postOps) == dnnl_success
                else { return nil }
            }
            guard
                let primitiveDescriptor = matmulDescriptor(
                    &source, &weights, &destination, attributes: attributes)
            else { return nil }
            defer { dnnl_primitive_desc_destroy(primitiveDescriptor) }
            // A packed weight or a batch that the optimised kernels do not take: fall back.
            if (key.packed || key.batch > 1) && Self.isReference(primitiveDescriptor) { return nil }
            var primitive: dnnl_primitive_t?
            var sourceMemory: dnnl_memory_t?
            var weightsMemory: dnnl_memory_t?
            var destinationMemory: dnnl_memory_t?
            guard dnnl_primitive_create(&primitive, primitiveDescriptor) == dnnl_success,
                dnnl_memory_create(&sourceMemory, &source, engine, nil) == dnnl_success,
                dnnl_memory_create(&weightsMemory, &weights, engine, nil) == dnnl_success,
                dnnl_memory_create(&destinationMemory, &destination, engine, nil) == dnnl_success,
                let primitive, let sourceMemory, let weightsMemory, let destinationMemory
            else { return nil }
            return Entry(
                primitive: primitive, source: sourceMemory, weights: weightsMemory,
                destination: destinationMemory)
        }
    }
#endif

/// What oneDNN's kept matmul primitives took from the C heap, in bytes (0 without oneDNN).
public func matmulPrimitiveBytes() -> Int {
    #if canImport(Accelerate)
        return 0
    #else
        return MatmulPrimitives.shared.heldBytes
    #endif
}

/// How many oneDNN matmul primitives are kept for products y = x Wᵀ with W (N, K) (0 without oneDNN).
public func matmulPrimitiveCount(n: Int, k: Int) -> Int {
    #if canImport(Accelerate)
        return 0
    #else
        return MatmulPrimitives.shared.count(n: n, k: k)
    #endif
}

/// The C heap's bytes in use, in every arena and mmapped block, or 0 where it cannot be read.
///
/// glibc's mallinfo2. Differences of it measure what making something took, as long as no other
/// thread allocates meanwhile.
func heapBytesInUse() -> Int {
    #if canImport(Accelerate)
        return 0
    #else
        let info = mallinfo2()
        return Int(info.uordblks + info.hblkhd)
    #endif
}

/// The C heap as glibc's mallinfo2 reports it, over every arena: bytes the arenas took from the
/// system, bytes in use there, free bytes they keep, and bytes in blocks mapped on their own.
public func heapStatistics() -> (arenas: Int, inUse: Int, free: Int, mapped: Int) {
    #if canImport(Accelerate)
        return (0, 0, 0, 0)
    #else
        let info = mallinfo2()
        return (Int(info.arena), Int(info.uordblks), Int(info.fordblks), Int(info.hblkhd))
    #endif
}
