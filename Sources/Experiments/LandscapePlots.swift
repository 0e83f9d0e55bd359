import Foundation
import Search

/// A minimal SVG canvas with a data-to-pixel mapping: enough for the landscape figures.
struct SVGCanvas {
    let width = 760.0, height = 420.0, left = 70.0, right = 20.0, top = 40.0, bottom = 60.0
    let xRange: ClosedRange<Double>, yRange: ClosedRange<Double>
    private(set) var body = ""

    init(x: ClosedRange<Double>, y: ClosedRange<Double>) {
        xRange = x
        yRange = y.lowerBound == y.upperBound ? (y.lowerBound - 1)...(y.upperBound + 1) : y
    }

    func px(_ x: Double) -> Double { left + (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * (width - left - right) }
    func py(_ y: Double) -> Double { height - bottom - (y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound) * (height - top - bottom) }

    mutating func add(_ element: String) { body += element + "\n" }

    mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, color: String = "#333", width w: Double = 1, dash: String? = nil) {
        add(String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"%.1f\"%@/>", px(x0), py(y0), px(x1), py(y1),
                   color, w, dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""))
    }

    mutating func rect(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, fill: String, opacity: Double = 1) {
        let (a, b) = (px(min(x0, x1)), py(max(y0, y1)))
        add(String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\" fill-opacity=\"%.2f\" stroke=\"#333\" stroke-width=\"0.5\"/>",
                   a, b, abs(px(x1) - px(x0)), abs(py(y1) - py(y0)), fill, opacity))
    }

    mutating func dot(_ x: Double, _ y: Double, radius: Double = 1.5, fill: String, opacity: Double = 0.35) {
        add(String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%@\" fill-opacity=\"%.2f\"/>", px(x), py(y), radius, fill, opacity))
    }

    mutating func text(_ s: String, x: Double, y: Double, anchor: String = "middle", size: Int = 12, pixels: Bool = false, rotate: Bool = false) {
        let (a, b) = pixels ? (x, y) : (px(x), py(y))
        let escaped = s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        add(String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%@\"%@>%@</text>", a, b, size, anchor,
                   rotate ? String(format: " transform=\"rotate(-90 %.1f %.1f)\"", a, b) : "", escaped))
    }

    /// Axes with `ticks` labelled ticks on y and the given x ticks.
    mutating func axes(title: String, xLabel: String, yLabel: String, xTicks: [(Double, String)], yTicks: Int = 5) {
        line(xRange.lowerBound, yRange.lowerBound, xRange.upperBound, yRange.lowerBound)
        line(xRange.lowerBound, yRange.lowerBound, xRange.lowerBound, yRange.upperBound)
        for (x, label) in xTicks { text(label, x: px(x), y: height - bottom + 16, size: 10, pixels: true) }
        for i in 0...yTicks {
            let y = yRange.lowerBound + Double(i) / Double(yTicks) * (yRange.upperBound - yRange.lowerBound)
            line(xRange.lowerBound, y, xRange.upperBound, y, color: "#ddd", width: 0.5)
            text(String(format: "%.3g", y), x: left - 6, y: py(y) + 4, anchor: "end", size: 10, pixels: true)
        }
        text(title, x: width / 2, y: 22, size: 14, pixels: true)
        text(xLabel, x: (left + width - right) / 2, y: height - 18, pixels: true)
        text(yLabel, x: 18, y: (top + height - bottom) / 2, pixels: true, rotate: true)
    }

    var svg: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + "</svg>\n"
    }
}

enum LandscapePlots {
    static func percent(_ fraction: Double) -> String { String(format: "%g%%", fraction * 100) }

    /// The paper's Fig. 2: accuracy of every scheme against its connection ratio (dots), with
    /// the quartile box, median and range per ratio, the threshold of the best `fraction`
    /// (dashed) and marked schemes (red, labelled).
    static func distribution(_ landscape: Landscape, fraction: Double, title: String, marks: [(label: String, ratio: Double, accuracy: Double)]) -> String {
        let L = Double(landscape.blocks)
        let accs = landscape.entries.map { $0.accuracy } + marks.map { $0.accuracy }
        let pad = max((accs.max()! - accs.min()!) * 0.05, 0.5)
        var c = SVGCanvas(x: -0.5 / L...1 + 0.5 / L, y: (accs.min()! - pad)...(accs.max()! + pad))
        let ticks = stride(from: 0, through: landscape.blocks, by: max(1, landscape.blocks / 12)).map { (Double($0) / L, String(format: "%.2f", Double($0) / L)) }
        c.axes(title: title, xLabel: "connection ratio (blocks with a SAM / L)", yLabel: "supernet validation accuracy (%)", xTicks: ticks)
        let half = 0.3 / L
        var jitter = 0
        for e in landscape.entries {
            jitter = (jitter &* 1_103_515_245 &+ 12345) & 0x7fff_ffff
            let dx = (Double(jitter % 1000) / 1000 - 0.5) * 2 * half
            c.dot(Double(e.scheme.bits.filter { $0 }.count) / L + dx, e.accuracy, fill: "#4a78b5")
        }
        for s in landscape.distribution() {
            c.rect(s.ratio - half, s.q1, s.ratio + half, s.q3, fill: "#9cc3e6", opacity: 0.5)
            c.line(s.ratio - half, s.median, s.ratio + half, s.median, color: "#c0392b", width: 1.5)
            c.line(s.ratio, s.min, s.ratio, s.q1)
            c.line(s.ratio, s.q3, s.ratio, s.max)
        }
        if landscape.entries.count >= 20 {
            let threshold = landscape.topThreshold(fraction)
            c.line(c.xRange.lowerBound, threshold, c.xRange.upperBound, threshold, color: "#27ae60", width: 1, dash: "6,4")
            c.text("Top \(percent(fraction))", x: c.px(c.xRange.upperBound) - 4, y: c.py(threshold) - 4, anchor: "end", size: 10, pixels: true)
        }
        for m in marks {
            c.dot(m.ratio, m.accuracy, radius: 4, fill: "#e74c3c", opacity: 1)
            c.text(m.label, x: c.px(m.ratio) + 6, y: c.py(m.accuracy) - 6, anchor: "start", size: 10, pixels: true)
        }
        return c.svg
    }

    /// The paper's Fig. 3: connection score per block of the best and the worst `fraction`,
    /// stage boundaries dashed.
    static func scores(best: [Double], worst: [Double], fraction: Double, stageSizes: [Int], title: String) -> String {
        let L = best.count
        var c = SVGCanvas(x: -0.5...(Double(L) - 0.5), y: 0...1)
        c.axes(title: title, xLabel: "block", yLabel: "connection score", xTicks: (0..<L).map { (Double($0), "\($0)") })
        for l in 0..<L {
            c.rect(Double(l) - 0.4, 0, Double(l), best[l], fill: "#27ae60", opacity: 0.8)
            c.rect(Double(l), 0, Double(l) + 0.4, worst[l], fill: "#c0392b", opacity: 0.8)
        }
        var boundary = 0
        for n in stageSizes.dropLast() {
            boundary += n
            c.line(Double(boundary) - 0.5, 0, Double(boundary) - 0.5, 1, color: "#888", dash: "4,3")
        }
        c.rect(Double(L) - 3.4, 0.93, Double(L) - 3.1, 0.97, fill: "#27ae60")
        c.text("best \(percent(fraction))", x: Double(L) - 3.0, y: 0.935, anchor: "start", size: 10)
        c.rect(Double(L) - 1.9, 0.93, Double(L) - 1.6, 0.97, fill: "#c0392b")
        c.text("worst \(percent(fraction))", x: Double(L) - 1.5, y: 0.935, anchor: "start", size: 10)
        return c.svg
    }
}
