import ArgumentParser
import Cluster
import Experiments
import Foundation
import Models
import NN
import PluginHost
import ProcessSupport
import Search
import Tensor
import Training

/// The `lth4sa` command line: flags in, a call into the Experiments library, text out. One
/// subcommand per file.
@main
struct LTH4SA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lth4sa",
        abstract: "Lottery tickets for self-attention: train CIFAR/ImageNet ResNets and search where attention modules pay off.",
        subcommands: [Run.self, Train.self, Eval.self, Info.self, Bench.self, Plugins.self, SupernetCommand.self, SearchCommand.self,
                      LandscapeCommand.self, CompareCommand.self, CorrelateCommand.self],
        defaultSubcommand: Run.self)

    /// Runs the command; any failure is one line `error: ...` on stderr and a non-zero exit
    /// (the usage text stays behind `--help`); a requested stop exits 130 after saying how to continue.
    ///
    /// Under `mpirun` every rank runs the command (rank 0 alone prints to stdout); a failure on
    /// any rank prints `error: rank R: ...` and ends the whole job.
    static func main() {
        lth4sa_stdout_line_buffered()  // line-buffered even into a file, so phase lines and progress interleave
        let group: ProcessGroup
        do { group = try MPIGroup.join() } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(1)
        }
        Console.shared.group = group
        // a plugin crashing in-process is named before the process ends
        _ = lth4sa_crash_install("the checkpoints written so far are intact (every write is atomic)")
        if !group.isLeader { _ = lth4sa_stdout_silence() }  // one voice: rank 0's
        func end(_ code: Int32) -> Never {
            (group as? MPIGroup)?.finalize()
            Foundation.exit(code)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
            end(0)
        } catch let code as ExitCode {
            end(code.rawValue)
        } catch let stopped as StoppedError {  // every rank stopped at the same step
            Console.shared.endStatus()
            print(FlagNames.rewrite(stopped.message))
            end(130)
        } catch {
            Console.shared.endStatus()
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            let text = FlagNames.rewrite(fileErrorDescription(error) ?? message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)")
            let rank = group.size > 1 ? "rank \(group.rank): " : ""
            FileHandle.standardError.write(Data("error: \(rank)\(text)\n".utf8))
            if group.size > 1 { group.abort(code: code.rawValue) }  // the other ranks would wait for this one forever
            Foundation.exit(code.rawValue)
        }
    }
}

/// Renders the library's progress: the live status on stderr (one updating line on a
/// terminal, a whole line every 10 s otherwise), phases and finished lines on stdout. Owns the
/// stop token that SIGINT/SIGTERM set.
final class Console: @unchecked Sendable {  // set up on the main thread before any command runs; the stop token is atomic
    static let shared = Console()
    let stop = StopToken()
    /// The ranks of this job (set once in `main`, before any command runs).
    var group: ProcessGroup = SingleProcess()
    private let interactive = isatty(STDERR_FILENO) != 0
    private var lastStatus = Date.distantPast
    private var statusShown = false

    /// The context every library call of this program gets; installs the stop handler.
    var context: ExperimentContext {
        installStopHandler()
        return ExperimentContext(progress: { [unowned self] in self.show($0) }, stop: stop, group: group)
    }

    func show(_ event: ProgressEvent) {
        guard group.isLeader else { return }
        switch event {
        case .status(let text):
            let now = Date()
            guard now.timeIntervalSince(lastStatus) > (interactive ? 0.25 : 10) else { return }
            lastStatus = now
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + text : text + "\n").utf8))
            statusShown = interactive
        case .line(let text):
            endStatus()
            print(FlagNames.rewrite(text))
        case .phase(let number, let total, let text):
            endStatus()
            print("== \(number)/\(total) \(FlagNames.rewrite(text))")
        }
    }

    /// Clears the live status line so the next output starts on a fresh line.
    func endStatus() {
        if statusShown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        statusShown = false
        lastStatus = .distantPast
    }

    /// First SIGINT/SIGTERM: the work stops at its next safe point (checkpoint saved). A second
    /// one kills at once.
    private func installStopHandler() {
        _ = Console.shared.stop  // initialised before any signal can arrive
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if Console.shared.stop.isRequested { signal(s, SIG_DFL); raise(s) }
                Console.shared.stop.request()
            }
        }
    }
}

/// Options every computing subcommand takes.
/// `-o`/`--output`: refused when empty (it would write into the current folder) or longer
/// than the system allows, with the reason (not "the parent is not writable" later).
func runDirectoryPath(_ text: String) throws -> String {
    guard !text.isEmpty else { throw ValidationError("an empty run directory would write into the current folder; give a folder name") }
    let bytes = text.utf8.count, limit = Int(PATH_MAX) - 1
    guard bytes <= limit else { throw ValidationError("the path has \(bytes) bytes; paths on this system have at most \(limit)") }
    if let long = text.split(separator: "/").first(where: { $0.utf8.count > Int(NAME_MAX) }) {
        throw ValidationError("the folder name '\(long.prefix(20))...' has \(long.utf8.count) bytes; names on this system have at most \(NAME_MAX)")
    }
    return text
}

/// `--seed`: a whole number 0...2^64-1, refused with the range otherwise.
func parseSeed(_ text: String) throws -> UInt64 {
    guard let seed = UInt64(text) else { throw ValidationError("a seed is a whole number in 0...\(UInt64.max)") }
    return seed
}

struct RuntimeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for oneDNN and OpenBLAS (one shared pool); default: the cores other processes leave free (measured at start), or all cores divided among the ranks of an mpirun job on this machine.")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation, data order, augmentation and splits.", transform: parseSeed)
    var seed: UInt64 = 0

    func validate() throws {
        if let t = threads, t < 1 || t > 4 * Threads.cores {
            throw ValidationError("--threads must be in 1...\(4 * Threads.cores) (this machine has \(Threads.cores) cores), got \(t)")
        }
    }

    func apply() {
        if let threads { return Threads.set(threads) }
        if let mpi = Console.shared.group as? MPIGroup { return Threads.set(max(1, Threads.cores / mpi.localSize)) }
        let cores = Threads.cores
        let free = cores == 1 ? 1 : min(cores, Threads.freeCores() ?? cores)  // one core: nothing to choose, no sampling
        if free < cores {
            print("note: \(cores - free) of \(cores) cores busy with other work; using \(max(1, free)) thread\(free > 1 ? "s" : "") (--threads \(cores) to use all)")
        }
        Threads.set(max(1, free))
    }
}

/// The model to build.
struct ModelOptions: ParsableArguments {
    @Option(help: "resnet20|resnet38|resnet56|resnet110|resnet164|resnet50|resnet-basic-N|resnet-bottleneck-N")
    var model: String = "resnet20"
}

extension AttachMode: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension SupernetSampling: ExpressibleByArgument {}
extension SchemeScore: ExpressibleByArgument {}

/// `--supernet-sampling a,b,...`: one or more supernet strategies (correlate compares several).
struct SupernetSamplings: ExpressibleByArgument {
    let values: [SupernetSampling]
    init?(argument: String) {
        let parts = argument.split(separator: ",").map { SupernetSampling(rawValue: String($0).trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        values = parts.map { $0! }
    }
    static var allValueStrings: [String] { SupernetSampling.allCases.map { $0.rawValue } }
}
extension PipelinePreset: ExpressibleByArgument {}
extension CheckpointEvaluation.Subset: ExpressibleByArgument {}

/// `text` padded with spaces to `n` characters (one space at least).
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
