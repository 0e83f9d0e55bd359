import Foundation

/// Reads only the headers of an ELF file, so that a truncated library is refused with a
/// message before `dlopen` maps it (mapping a file shorter than its segments ends in SIGBUS
/// when the loader touches the missing pages).
enum ELFFile {
    /// Why the 64-bit little-endian ELF file at `path` is shorter than its headers say, or nil
    /// when it is complete or not such a file (then `dlopen` reports what it is).
    static func truncation(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), (try? handle.seek(toOffset: 0)) != nil,
              let header = try? handle.read(upToCount: 64), header.count >= 4,
              header.prefix(4) == Data([0x7F, 0x45, 0x4C, 0x46]) else { return nil }
        guard header.count == 64 else { return "\(size) bytes, shorter than an ELF header" }
        guard header[4] == 2, header[5] == 1 else { return nil }  // not ELF64 little-endian: dlopen decides
        func integer(_ data: Data, _ at: Int, _ bytes: Int) -> UInt64 {
            (0..<bytes).reduce(UInt64(0)) { $0 | UInt64(data[data.startIndex + at + $1]) << (8 * UInt64($1)) }
        }
        let programOffset = integer(header, 0x20, 8), sectionOffset = integer(header, 0x28, 8)
        let programEntry = integer(header, 0x36, 2), programCount = integer(header, 0x38, 2)
        let sectionEntry = integer(header, 0x3A, 2), sectionCount = integer(header, 0x3C, 2)
        let programEnd = programOffset.addingReportingOverflow(programEntry * programCount)
        guard !programEnd.overflow, programEnd.partialValue <= size else {
            return "\(size) bytes, its program headers end at byte \(programEnd.partialValue)"
        }
        if sectionCount > 0 {
            let sectionEnd = sectionOffset.addingReportingOverflow(sectionEntry * sectionCount)
            guard !sectionEnd.overflow, sectionEnd.partialValue <= size else {
                return "\(size) bytes, its section headers end at byte \(sectionEnd.partialValue)"
            }
        }
        guard programEntry >= 0x38, (try? handle.seek(toOffset: programOffset)) != nil,
              let table = try? handle.read(upToCount: Int(programEntry * programCount)), table.count == Int(programEntry * programCount) else { return nil }
        for k in 0..<Int(programCount) {
            let at = k * Int(programEntry)
            guard integer(table, at, 4) == 1 else { continue }  // PT_LOAD
            let end = integer(table, at + 0x08, 8).addingReportingOverflow(integer(table, at + 0x20, 8))
            if end.overflow || end.partialValue > size { return "\(size) bytes, a loadable segment ends at byte \(end.partialValue)" }
        }
        return nil
    }
}
