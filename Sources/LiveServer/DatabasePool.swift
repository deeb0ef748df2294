import Dispatch
import Foundation
import InteractionStore
import Logging

/// Connections for work that can block on the database (ingest, paths, history), each on its
/// own serial queue, so the event loop never waits for PostgreSQL.
final class DatabasePool: @unchecked Sendable {
    fileprivate final class Worker: @unchecked Sendable {
        let queue: DispatchQueue
        var store: InteractionStore?   // touched only on `queue`
        var pending = 0                // guarded by the pool's lock

        init(index: Int) {
            queue = DispatchQueue(label: "sightline-db-\(index)")
        }
    }

    private let conninfo: String
    private let statementTimeoutMilliseconds: Int?
    private let logger: Logger
    fileprivate let workers: [Worker]
    private let lock = NSLock()
    /// Jobs queued beyond this are refused (503) rather than piling up.
    let maxPending: Int

    /// `statementTimeoutMilliseconds`: PostgreSQL cancels a statement of this pool's
    /// connections that runs longer (nil: no limit), so one costly request cannot hold a worker.
    init(conninfo: String, size: Int, maxPending: Int = 512, statementTimeoutMilliseconds: Int? = nil, logger: Logger) {
        self.conninfo = conninfo
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
        self.logger = logger
        self.maxPending = maxPending
        workers = (0..<max(size, 1)).map(Worker.init)
    }

    private func connect() throws -> InteractionStore {
        let store = try InteractionStore(conninfo: conninfo)
        if let ms = statementTimeoutMilliseconds {
            try store.setStatementTimeout(milliseconds: ms)
        }
        return store
    }

    /// Runs `job` with a connected store on a worker; `done` gets its result on that worker's
    /// thread. Returns false (and runs nothing) when the pool is saturated.
    ///
    /// When the connection dies under a job, a `replayable` job (a read, or a write whose
    /// idempotency key makes a second run answer with the first one's result) runs once more on
    /// a new connection. Any other write is never run again: its commit may have happened, so
    /// it fails with `WriteOutcomeUnknown`.
    func submit<R: Sendable>(_ job: @escaping (InteractionStore) throws -> R, replayable: Bool = true,
                             done: @escaping @Sendable (Result<R, Error>) -> Void) -> Bool {
        let worker: Worker? = lock.withLock {
            guard let w = workers.min(by: { $0.pending < $1.pending }), w.pending < maxPending / workers.count + 1
            else { return nil }
            w.pending += 1
            return w
        }
        guard let worker else { return false }
        let jobBox = UncheckedBox(job)
        worker.queue.async { [self] in
            let result: Result<R, Error>
            do {
                // The server may have closed the connection since its last job (a restart,
                // pg_terminate_backend, an idle timeout): its goodbye (or EOF) is then waiting on
                // the socket, where an idle connection gets nothing else but a notice. Check such
                // a connection before handing it a write whose fate would be unknown.
                if let store = worker.store, store.connection.hasUnreadInput,
                   (try? store.connection.query("select 1")) == nil {
                    worker.store = nil
                }
                if worker.store == nil || worker.store?.connection.isHealthy == false {
                    worker.store = try connect()
                }
                do {
                    result = .success(try jobBox.value(worker.store!))
                } catch StoreError.unavailable(let message) {
                    // The connection died under us (a database restart).
                    worker.store = nil
                    guard replayable else { throw WriteOutcomeUnknown(message: message) }
                    worker.store = try connect()
                    result = .success(try jobBox.value(worker.store!))
                }
            } catch {
                if case StoreError.unavailable = error { worker.store = nil }
                result = .failure(error)
            }
            lock.withLock { worker.pending -= 1 }
            done(result)
        }
        return true
    }
}

extension DatabasePool {
    /// Waits until every job submitted so far has finished, at most `timeout` (a job can wait on
    /// a lock held by another writer); true when all did.
    func drain(timeout: TimeInterval = 5) -> Bool {
        let group = DispatchGroup()
        for worker in workers { worker.queue.async(group: group) {} }
        return group.wait(timeout: .now() + timeout) == .success
    }
}

/// The connection broke while a write ran: it may or may not have committed.
struct WriteOutcomeUnknown: Error, Sendable {
    var message: String
}

/// Carries a non-Sendable value to a queue that is its only user from then on.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
