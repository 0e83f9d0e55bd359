import ArgumentParser
import Checkpoint
import Foundation
import Tensor

/// The `lth4sa` command line: one subcommand per file.
@main
struct LTH4SA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lth4sa",
        abstract: "Lottery tickets for self-attention: train CIFAR/ImageNet ResNets and search where attention modules pay off.",
        subcommands: [Run.self, Train.self, Eval.self, Info.self, Bench.self, Plugins.self, SupernetCommand.self, SearchCommand.self, LandscapeCommand.self, CompareCommand.self],
        defaultSubcommand: Run.self)

    /// Runs the command; any failure is one line `error: ...` on stderr and a non-zero exit
    /// (the usage text stays behind `--help`).
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)  // line-buffered even into a file, so stage lines and progress interleave
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("error: \(text)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}

/// Options every computing subcommand takes.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for oneDNN and OpenBLAS (one shared pool); default: all cores.")
    var threads: Int?

    @Option(help: "Seed for initialisation, data order, augmentation and splits.")
    var seed: UInt64 = 0

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func apply() { Threads.set(threads ?? Threads.cores) }
}

/// The model to build.
struct ModelOptions: ParsableArguments {
    @Option(help: "resnet20|resnet38|resnet56|resnet110|resnet164|resnet50|resnet-basic-N|resnet-bottleneck-N")
    var model: String = "resnet20"
}

/// Prints `message` on stderr without a newline (progress lines use \r).
func status(_ message: String) {
    FileHandle.standardError.write(message.data(using: .utf8)!)
}

/// Peak resident set size of this process in bytes.
func peakRSS() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

/// Atomic writes of small text/JSON files through the checkpoint writer (temporary file,
/// fsync, rename).
enum AtomicFile {
    static func write(_ data: Data, to url: URL) throws { try SafeTensors.writeAtomically(data, to: url.path) }
}
