import ArgumentParser
import Cluster
import Experiments
import Foundation
import ProcessSupport
import Tensor
import Terminal

/// The `lth4sa` command line: flags in, a call into the Experiments library, text out. The
/// subcommands by topic: Studies (run, compare, correlate), Train (train, supernet train),
/// SupernetTools (search, landscape), Inspect (eval, info), Bench, Plugins.
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
            print(flagNames.rewrite(stopped.message))
            end(130)
        } catch {
            Console.shared.endStatus()
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            let text = flagNames.rewrite(fileErrorDescription(error) ?? message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)")
            let rank = group.size > 1 ? "rank \(group.rank): " : ""
            FileHandle.standardError.write(Data("error: \(rank)\(text)\n".utf8))
            if group.size > 1 { group.abort(code: code.rawValue) }  // the other ranks would wait for this one forever
            Foundation.exit(code.rawValue)
        }
    }
}

extension Console {
    /// The program's console (flags shown for the library's setting names).
    static let shared = Console(rewrite: { flagNames.rewrite($0) })

    /// The context every library call of this program gets; installs the stop handler.
    var withStopHandler: ExperimentContext {
        installStopHandler()
        return context
    }

    /// First SIGINT/SIGTERM: the work stops at its next safe point (checkpoint saved). A second
    /// one kills at once.
    func installStopHandler() {
        _ = Console.shared.stop  // initialised before any signal can arrive
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if Console.shared.stop.isRequested { signal(s, SIG_DFL); raise(s) }
                Console.shared.stop.request()
            }
        }
    }
}
