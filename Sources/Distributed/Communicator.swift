import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The processes of a data-parallel job and the collectives between them.
///
/// A process started by `mpirun` (Open MPI) joins its job through MPI; any other process is a job of
/// one, whose collectives return their input. MPI is loaded at run time (`dlopen` of libmpi), so one
/// build runs alone where no MPI is installed and under `mpirun` where it is.
///
///     let world = try Communicator.world()
///     var gradients: [Float] = ...
///     gradients.withUnsafeMutableBufferPointer { world.sum($0) }   // every rank gets the sum
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Bytes this process handed to collectives so far (its send volume, counted as a ring
    /// all-reduce sends it: 2 (n - 1) / n of the buffer).
    public private(set) var bytesSent = 0
    private let mpi: MPILibrary?
    /// The thread of `startSum`, made at its first use (nil when MPI cannot take calls from it).
    private var progress: ProgressThread?
    /// Whether MPI takes calls from more than one thread, one at a time (MPI_THREAD_SERIALIZED).
    private let serialized: Bool

    /// A job of one.
    public static let single = Communicator(rank: 0, size: 1, mpi: nil)

    private init(rank: Int, size: Int, mpi: MPILibrary?, serialized: Bool = false) {
        self.rank = rank
        self.size = size
        self.mpi = mpi
        self.serialized = serialized
    }

    /// True for rank 0, the one that writes metrics, checkpoints and the final model.
    public var isMain: Bool { rank == 0 }

    nonisolated(unsafe) private static var shared: Communicator?
    private static let sharedLock = NSLock()

    /// The job this process belongs to.
    ///
    /// MPI's world when started by `mpirun` with more than one process, else a job of one.
    /// Initialises MPI once; an error when `mpirun` started this process but no MPI library can be
    /// loaded.
    public static func world(environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> Communicator
    {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let shared { return shared }
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].first { environment[$0] != nil }
        let declaredSize = environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) } ?? 1
        guard let launched, declaredSize > 1 || environment["OMPI_COMM_WORLD_SIZE"] == nil else {
            shared = .single
            return .single
        }
        let library = try MPILibrary.load(because: launched)
        let (rank, size, serialized) = try library.initialize()
        shared = Communicator(rank: rank, size: size, mpi: library, serialized: serialized)
        return shared!
    }

    /// Starts summing `values` over every rank, in place, and returns at once.
    ///
    /// The sum is done when `waitForSums` returns. Every rank must start the same buffers in the
    /// same order.
    ///
    /// A communication thread runs it as a non-blocking all-reduce (MPI_Iallreduce) and tests it
    /// every 200 µs, sleeping between: MPI moves data only inside its calls, and Open MPI's blocking
    /// calls spin, which would take a core from the compute. Where MPI allows no second thread the
    /// sum runs here, blocking.
    public func startSum(_ values: UnsafeMutableBufferPointer<Float>) {
        guard size > 1, !values.isEmpty else { return }
        guard serialized, let mpi else { return sum(values) }
        let progress = self.progress ?? ProgressThread(mpi)
        self.progress = progress
        var start = 0
        while start < values.count {
            let n = min(values.count - start, 1 << 30)
            progress.submit(values.baseAddress! + start, count: n)
            start += n
        }
        bytesSent += 2 * (size - 1) * values.count * 4 / size
    }

    /// Waits until every sum `startSum` started is done.
    public func waitForSums() {
        progress?.waitForAll()
    }

    /// Sums `values` over every rank, in place.
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
        guard let mpi, size > 1 else { return }
        waitForSums()
        mpi.allreduceSum(UnsafeMutableRawPointer(values.baseAddress!), count: values.count, type: mpi.float)
        bytesSent += 2 * (size - 1) * values.count * 4 / size
    }

    /// Sums `values` over every rank, in place.
    public func sum(_ values: inout [Double]) {
        guard let mpi, size > 1, !values.isEmpty else { return }
        waitForSums()
        values.withUnsafeMutableBytes {
            mpi.allreduceSum($0.baseAddress!, count: $0.count / 8, type: mpi.double)
        }
        bytesSent += 2 * (size - 1) * values.count * 8 / size
    }

    /// The sum of `value` over every rank.
    public func sum(_ value: Double) -> Double {
        var values = [value]
        sum(&values)
        return values[0]
    }

    /// Every rank's `values` (of any count), concatenated in rank order.
    public func gather(_ values: [Double]) -> [Double] {
        guard let mpi, size > 1 else { return values }
        let counts = gatherEqual([Double(values.count)], mpi).map { Int($0) }
        let width = counts.max() ?? 0
        guard width > 0 else { return [] }
        let all = gatherEqual(values + [Double](repeating: 0, count: width - values.count), mpi)
        return counts.enumerated().flatMap { rank, count in all[(rank * width)..<(rank * width + count)] }
    }

    /// Every rank's `values`, where every rank passes the same count.
    private func gatherEqual(_ values: [Double], _ mpi: MPILibrary) -> [Double] {
        waitForSums()
        var result = [Double](repeating: 0, count: values.count * size)
        values.withUnsafeBytes { send in
            result.withUnsafeMutableBytes { receive in
                mpi.allgather(send.baseAddress!, receive.baseAddress!, count: values.count, type: mpi.double)
            }
        }
        bytesSent += values.count * 8 * (size - 1)
        return result
    }

    /// Every rank's `values`, concatenated in rank order (counts within 2^53 pass exactly).
    public func gather(_ values: [Int]) -> [Int] {
        size > 1 ? gather(values.map(Double.init)).map { Int($0) } : values
    }

    /// Every rank's `values`, concatenated in rank order.
    public func gather(_ values: [Bool]) -> [Bool] {
        size > 1 ? gather(values.map { $0 ? 1.0 : 0 }).map { $0 != 0 } : values
    }

    /// Every rank's `values`, concatenated in rank order; nil stays nil.
    public func gather(_ values: [Double?]) -> [Double?] {
        size > 1 ? gather(values.map { $0 ?? .nan }).map { $0.isNaN ? nil : $0 } : values
    }

    /// Every rank's `bytes` (of any length), in rank order.
    public func gather(bytes: [UInt8]) -> [[UInt8]] {
        guard let mpi, size > 1 else { return [bytes] }
        let counts = gatherEqual([Double(bytes.count)], mpi).map { Int($0) }
        let width = counts.max() ?? 0
        guard width > 0 else { return counts.map { _ in [] } }
        waitForSums()
        let padded = bytes + [UInt8](repeating: 0, count: width - bytes.count)
        var result = [UInt8](repeating: 0, count: width * size)
        padded.withUnsafeBytes { send in
            result.withUnsafeMutableBytes { receive in
                mpi.allgather(send.baseAddress!, receive.baseAddress!, count: width, type: mpi.byte)
            }
        }
        bytesSent += width * (size - 1)
        return counts.enumerated().map { rank, count in Array(result[(rank * width)..<(rank * width + count)])
        }
    }

    /// Waits for every rank.
    public func barrier() {
        waitForSums()
        mpi?.barrier()
    }

    /// Ends the whole job (every rank) with `code`, after `message` on standard error: a rank that
    /// fails must not leave the others waiting in a collective.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("\(message)\n".utf8))
        if let mpi { mpi.abort(code) }
        exit(code)
    }

    /// Ends MPI cleanly (after the last collective).
    public func finish() {
        waitForSums()
        mpi?.finalize()
    }
}

/// The thread that runs `Communicator.startSum`'s all-reduces and drives MPI's progress on them.
///
/// MPI is called from here only while sums are outstanding, and the other collectives wait for
/// them first (`waitForSums`), so calls never overlap: MPI_THREAD_SERIALIZED suffices.
private final class ProgressThread: @unchecked Sendable {
    private let mpi: MPILibrary
    private let condition = NSCondition()
    private var queue: [(buffer: UnsafeMutablePointer<Float>, count: Int)] = []
    private var submitted = 0
    private var completed = 0

    init(_ mpi: MPILibrary) {
        self.mpi = mpi
        let thread = Thread { [unowned self] in run() }
        thread.name = "grpo-allreduce"
        thread.start()
    }

    func submit(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        condition.lock()
        queue.append((buffer, count))
        submitted += 1
        condition.signal()
        condition.unlock()
    }

    func waitForAll() {
        condition.lock()
        while completed < submitted { condition.wait() }
        condition.unlock()
    }

    private func run() {
        var active: [UnsafeMutableRawPointer?] = []
        while true {
            condition.lock()
            while queue.isEmpty && active.isEmpty { condition.wait() }
            let new = queue
            queue.removeAll()
            condition.unlock()
            // Started in submission order: every rank starts the same sums in the same order.
            for item in new { active.append(mpi.startSum(item.buffer, count: item.count)) }
            var done = 0
            var i = 0
            while i < active.count {
                if mpi.test(&active[i]) {
                    active.remove(at: i)
                    done += 1
                } else {
                    i += 1
                }
            }
            if done > 0 {
                condition.lock()
                completed += done
                condition.broadcast()
                condition.unlock()
            }
            if !active.isEmpty { usleep(200) }
        }
    }
}

/// Why the job cannot start.
public struct DistributedError: Error, CustomStringConvertible {
    public let description: String
}

/// Open MPI's C API, looked up in libmpi at run time.
///
/// Open MPI's handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`) are the addresses of its predefined
/// objects (`ompi_mpi_comm_world`, ...), so they are found with `dlsym` like the functions.
final class MPILibrary: @unchecked Sendable {
    typealias Handle = UnsafeMutableRawPointer
    typealias InitThread =
        @convention(c) (
            UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>
        ) -> Int32
    typealias IntQuery = @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    typealias Allreduce =
        @convention(c) (
            UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle
        ) -> Int32
    typealias Allgather =
        @convention(c) (
            UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle
        ) -> Int32
    typealias Iallreduce =
        @convention(c) (
            UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>
        ) -> Int32
    typealias Test =
        @convention(c) (
            UnsafeMutablePointer<UnsafeMutableRawPointer?>, UnsafeMutablePointer<Int32>,
            UnsafeMutableRawPointer?
        ) -> Int32
    typealias Barrier = @convention(c) (Handle) -> Int32
    typealias Abort = @convention(c) (Handle, Int32) -> Int32
    typealias Finalize = @convention(c) () -> Int32

    let world: Handle
    let float: Handle
    let double: Handle
    let byte: Handle
    let sumOp: Handle
    private let mpiInitThread: InitThread
    private let commRank: IntQuery
    private let commSize: IntQuery
    private let mpiAllreduce: Allreduce
    private let mpiAllgather: Allgather
    private let mpiIallreduce: Iallreduce
    private let mpiTest: Test
    private let mpiBarrier: Barrier
    private let mpiAbort: Abort
    private let mpiFinalize: Finalize
    /// Open MPI's MPI_IN_PLACE.
    private let inPlace = UnsafeRawPointer(bitPattern: 1)

    static let candidates = ["libmpi.so.40", "libmpi.so", "libmpi.so.12", "libmpi.dylib"]

    static func load(because variable: String) throws -> MPILibrary {
        var errors: [String] = []
        for name in candidates {
            // RTLD_GLOBAL: Open MPI's own plugins resolve libmpi's symbols through it.
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                return try MPILibrary(handle, name: name)
            }
            if let error = dlerror() { errors.append(String(cString: error)) }
        }
        throw DistributedError(
            description:
                "started by mpirun (\(variable) is set) but no MPI library could be loaded (tried "
                + candidates.joined(separator: ", ")
                + "); install Open MPI (Debian: apt-get install openmpi-bin, or scripts/setup.sh)"
                + (errors.isEmpty ? "" : ": \(errors[0])"))
    }

    private init(_ library: UnsafeMutableRawPointer, name: String) throws {
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let pointer = dlsym(library, name) else {
                throw DistributedError(
                    description:
                        "\(name) is missing from the MPI library: grpo speaks Open MPI's ABI (Open MPI 4 or later);"
                        + " MPICH-family libraries are not supported")
            }
            return pointer
        }
        world = try symbol("ompi_mpi_comm_world")
        float = try symbol("ompi_mpi_float")
        double = try symbol("ompi_mpi_double")
        byte = try symbol("ompi_mpi_byte")
        sumOp = try symbol("ompi_mpi_op_sum")
        mpiInitThread = unsafeBitCast(try symbol("MPI_Init_thread"), to: InitThread.self)
        commRank = unsafeBitCast(try symbol("MPI_Comm_rank"), to: IntQuery.self)
        commSize = unsafeBitCast(try symbol("MPI_Comm_size"), to: IntQuery.self)
        mpiAllreduce = unsafeBitCast(try symbol("MPI_Allreduce"), to: Allreduce.self)
        mpiAllgather = unsafeBitCast(try symbol("MPI_Allgather"), to: Allgather.self)
        mpiIallreduce = unsafeBitCast(try symbol("MPI_Iallreduce"), to: Iallreduce.self)
        mpiTest = unsafeBitCast(try symbol("MPI_Test"), to: Test.self)
        mpiBarrier = unsafeBitCast(try symbol("MPI_Barrier"), to: Barrier.self)
        mpiAbort = unsafeBitCast(try symbol("MPI_Abort"), to: Abort.self)
        mpiFinalize = unsafeBitCast(try symbol("MPI_Finalize"), to: Finalize.self)
    }

    /// Joins the job.
    ///
    /// `serialized` tells whether MPI allows calls from more than one thread, one at a time
    /// (MPI_THREAD_SERIALIZED), which the overlapped all-reduce's thread needs.
    func initialize() throws -> (rank: Int, size: Int, serialized: Bool) {
        // MPI_THREAD_SERIALIZED is 2 in Open MPI's mpi.h (SINGLE 0, FUNNELED 1, MULTIPLE 3).
        var provided: Int32 = 0
        guard mpiInitThread(nil, nil, 2, &provided) == 0 else {
            throw DistributedError(description: "MPI_Init_thread failed")
        }
        var rank: Int32 = 0
        var size: Int32 = 0
        _ = commRank(world, &rank)
        _ = commSize(world, &size)
        return (Int(rank), Int(size), provided >= 2)
    }

    /// Starts an in-place sum of `count` (at most 2^31 - 1) floats; the request to `test`.
    func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> UnsafeMutableRawPointer? {
        var request: UnsafeMutableRawPointer?
        let status = mpiIallreduce(inPlace, buffer, Int32(count), float, sumOp, world, &request)
        if status != 0 { abort(status) }
        return request
    }

    /// Whether `request` has completed (progressing MPI's work meanwhile).
    func test(_ request: inout UnsafeMutableRawPointer?) -> Bool {
        var flag: Int32 = 0
        let status = mpiTest(&request, &flag, nil)
        if status != 0 { abort(status) }
        return flag != 0
    }

    /// In-place sum, in pieces of at most 2^30 elements (MPI counts are 32-bit).
    func allreduceSum(_ buffer: UnsafeMutableRawPointer, count: Int, type: Handle) {
        let width = type == double ? 8 : 4
        var start = 0
        while start < count {
            let n = min(count - start, 1 << 30)
            let status = mpiAllreduce(inPlace, buffer + start * width, Int32(n), type, sumOp, world)
            if status != 0 { abort(status) }
            start += n
        }
    }

    func allgather(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, type: Handle) {
        let status = mpiAllgather(send, Int32(count), type, receive, Int32(count), type, world)
        if status != 0 { abort(status) }
    }

    func barrier() { _ = mpiBarrier(world) }

    func abort(_ code: Int32) -> Never {
        _ = mpiAbort(world, code)
        exit(code)
    }

    func finalize() { _ = mpiFinalize() }
}
