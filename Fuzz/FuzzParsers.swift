import Checkpoint
import Data
import Foundation

// Fuzzing the three parsers that read files a user hands us: `.npy`, safetensors and CIFAR
// binaries. Every input must give a value or a thrown one-line error: never a crash, a hang or
// an out-of-bounds read (AddressSanitizer watches).
//
//   scripts/fuzz.sh [SECONDS]        builds with -sanitize=fuzzer,address and runs each target
//   .build/release/lth4sa-fuzz npy FILE...    replays inputs through the parser (normal build)
//
// The target is chosen by $LTH4SA_FUZZ_TARGET (npy | safetensors | cifar) under libFuzzer, or by
// the first argument when replaying. The seed corpus is in Fuzz/corpus/<target>.

/// A scratch folder per process for the file the parsers read.
let scratch: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}()

/// Parses `bytes` with `target`'s parser; errors are expected and ignored.
func parse(_ bytes: Data, target: String) {
    switch target {
    case "npy":
        let path = scratch.appendingPathComponent("x.npy")
        guard (try? bytes.write(to: path)) != nil, let array = try? NpyArray(path: path.path) else { return }
        if array.shape.count == 1, let labels = try? array.labels() {
            _ = try? array.images(labels: labels, classes: 10)
        }
        if array.shape.count == 4 {
            _ = try? array.images(labels: [Int32](repeating: 0, count: min(array.shape[0], 1 << 16)), classes: 1)
        }
        _ = try? array.floats()
    case "safetensors":
        let path = scratch.appendingPathComponent("x.safetensors")
        guard (try? bytes.write(to: path)) != nil else { return }
        _ = try? SafeTensors.read(path.path)
    case "cifar":
        for name in ["train.bin", "test.bin"] { try? bytes.write(to: scratch.appendingPathComponent(name)) }
        _ = try? CIFAR.load(directory: scratch.path, fine100: true)
    default:
        fatalError("unknown fuzz target '\(target)'; expected npy, safetensors or cifar")
    }
}

let fuzzTarget = ProcessInfo.processInfo.environment["LTH4SA_FUZZ_TARGET"] ?? "npy"

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    parse(Data(bytes: data, count: size), target: fuzzTarget)
    return 0
}

#if FUZZING
/// libFuzzer's driver (SwiftPM links an executable's entry as `lth4sa_fuzz_main`, so the
/// driver is started from there instead of libFuzzer's own `main`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@_cdecl("lth4sa_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc, vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in
        parse(data.map { Data(bytes: $0, count: size) } ?? Data(), target: fuzzTarget)
        return 0
    }
}
#else
/// Without libFuzzer: replays the files given after the target name.
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let target = args.first else {
            print("usage: lth4sa-fuzz npy|safetensors|cifar FILE...")
            exit(2)
        }
        var count = 0
        for path in args.dropFirst() {
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            parse(bytes, target: target)
            count += 1
        }
        print("replayed \(count) input(s) through the \(target) parser without a crash")
    }
}
#endif
