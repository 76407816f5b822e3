import Dispatch
import Foundation

#if !canImport(Accelerate)
    import CDNNL
#endif

/// The number of worker threads kernels split their loops across: `OMP_NUM_THREADS` when set, else
/// the cores this process may run on (its affinity: `mpirun` binds each rank to its own cores,
/// `taskset` and container cpusets restrict it), else every core.
public let coreCount: Int = threadCount(
    environment: ProcessInfo.processInfo.environment,
    allowedCPUs: try? String(contentsOfFile: "/proc/self/status", encoding: .utf8))

/// The thread count for `OMP_NUM_THREADS` and a /proc/self/status text (`Cpus_allowed_list`).
public func threadCount(environment: [String: String], allowedCPUs status: String?) -> Int {
    if let text = environment["OMP_NUM_THREADS"], let first = text.split(separator: ",").first,
        let n = Int(first.trimmingCharacters(in: .whitespaces)), n > 0
    {
        return n
    }
    if let status,
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
    {
        var count = 0
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)
            .split(separator: ",")
        {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2, bounds[1] >= bounds[0] {
                count += bounds[1] - bounds[0] + 1
            } else if bounds.count == 1 {
                count += 1
            }
        }
        if count > 0 { return min(count, ProcessInfo.processInfo.activeProcessorCount) }
    }
    return ProcessInfo.processInfo.activeProcessorCount
}

/// Carries a closure into Dispatch's `@Sendable` world.
///
/// Kernels hand each task a disjoint slice of their buffers, which is what makes this sound.
private struct UncheckedBody: @unchecked Sendable {
    let call: (Int) -> Void
}

/// Runs `body(t)` for t in 0..<tasks concurrently and waits for all of them.
///
/// On Linux the tasks run on OpenMP's thread pool, the one oneDNN's sgemm uses (see shim.h);
/// elsewhere on Dispatch.
public func parallelTasks(_ tasks: Int, _ body: (Int) -> Void) {
    if tasks <= 1 {
        if tasks == 1 { body(0) }
        return
    }
    withoutActuallyEscaping(body) { body in
        #if canImport(Accelerate)
            let box = UncheckedBody(call: body)
            DispatchQueue.concurrentPerform(iterations: tasks) { box.call($0) }
        #else
            var job = OpenMPJob(body: body, tasks: tasks)
            withUnsafeMutablePointer(to: &job) { pointer in
                GOMP_parallel(
                    { raw in
                        let job = raw!.assumingMemoryBound(to: OpenMPJob.self).pointee
                        let (thread, threads) = (Int(omp_get_thread_num()), Int(omp_get_num_threads()))
                        for t in Swift.stride(from: thread, to: job.tasks, by: threads) { job.body(t) }
                    }, pointer, UInt32(min(tasks, coreCount)), 0)
            }
        #endif
    }
}

#if !canImport(Accelerate)
    private struct OpenMPJob {
        let body: (Int) -> Void
        let tasks: Int
    }
#endif

/// Runs `body` on disjoint contiguous slices of `0..<count`, one per core, and waits for all.
///
/// Loops with fewer than `minimumPerTask` items per core use fewer tasks, down to the calling thread.
public func parallelFor(_ count: Int, minimumPerTask: Int = 1, _ body: (Range<Int>) -> Void) {
    let tasks = min(coreCount, max(1, count / max(minimumPerTask, 1)))
    parallelTasks(tasks) { t in
        let lower = count * t / tasks
        let upper = count * (t + 1) / tasks
        if lower < upper { body(lower..<upper) }
    }
}
