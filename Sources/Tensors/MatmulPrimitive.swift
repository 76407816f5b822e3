#if !canImport(Accelerate)
    import CDNNL
    import Foundation

    /// oneDNN's matmul primitive for `y = x Wᵀ` on skinny shapes (decoding: a few dozen rows).
    ///
    /// Measured here at 32 rows (32 x 576 -> 3072): the primitive's brgemm kernels reach ~330 GFLOP/s
    /// where `dnnl_sgemm` reaches ~170-210, so linear layers with few rows go through it. One
    /// primitive per (M, N, K) is created on first use and kept, with memory objects whose data
    /// handles are pointed at each call's buffers.
    final class MatmulPrimitives: @unchecked Sendable {
        static let shared = MatmulPrimitives()

        private struct Entry {
            let primitive: dnnl_primitive_t
            let source: dnnl_memory_t
            let weights: dnnl_memory_t
            let destination: dnnl_memory_t
        }

        private var engine: dnnl_engine_t?
        private var stream: dnnl_stream_t?
        private var entries: [SIMD3<Int>: Entry] = [:]
        private let lock = NSLock()

        private init() {
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
            lock.lock()
            defer { lock.unlock() }
            guard let entry = entry(m: m, n: n, k: k) else { return false }
            dnnl_memory_set_data_handle(entry.source, UnsafeMutableRawPointer(mutating: x))
            dnnl_memory_set_data_handle(entry.weights, UnsafeMutableRawPointer(mutating: w))
            dnnl_memory_set_data_handle(entry.destination, UnsafeMutableRawPointer(y))
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

        private func entry(m: Int, n: Int, k: Int) -> Entry? {
            let key = SIMD3(m, n, k)
            if let entry = entries[key] { return entry }
            guard let engine else { return nil }
            var source = dnnl_memory_desc_t()
            var weights = dnnl_memory_desc_t()
            var destination = dnnl_memory_desc_t()
            // Weights are (N, K) row-major: the K x N matrix in "ba" order.
            guard
                dnnl_memory_desc_init_by_tag(&source, 2, [Int64(m), Int64(k)], dnnl_f32, dnnl_ab)
                    == dnnl_success,
                dnnl_memory_desc_init_by_tag(&weights, 2, [Int64(k), Int64(n)], dnnl_f32, dnnl_ba)
                    == dnnl_success,
                dnnl_memory_desc_init_by_tag(&destination, 2, [Int64(m), Int64(n)], dnnl_f32, dnnl_ab)
                    == dnnl_success
            else { return nil }
            var descriptor = dnnl_matmul_desc_t()
            guard dnnl_matmul_desc_init(&descriptor, &source, &weights, nil, &destination) == dnnl_success
            else { return nil }
            var primitiveDescriptor: dnnl_primitive_desc_t?
            guard
                dnnl_primitive_desc_create(&primitiveDescriptor, &descriptor, nil, engine, nil)
                    == dnnl_success
            else {
                return nil
            }
            defer { dnnl_primitive_desc_destroy(primitiveDescriptor) }
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
            let entry = Entry(
                primitive: primitive, source: sourceMemory, weights: weightsMemory,
                destination: destinationMemory)
            entries[key] = entry
            return entry
        }
    }
#endif
