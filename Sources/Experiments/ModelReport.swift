import Data
import Models
import Tensor
import Training

/// The text of `lth4sa info`: a model's layer table (with the SAM of `config`, if any),
/// parameters and multiply-adds.
public enum ModelReport {
    public static func lines(model: String, classes: Int, config: RunConfig) throws -> [String] {
        guard classes >= 2 && classes <= DataSource.maxClasses else { throw LTHError("`classes` must be in 2...\(DataSource.maxClasses), got \(classes)") }
        let spec = try ModelSpec(model)
        let net = ResNet(spec, classes: classes, seed: 0)
        let sam = try SAMAttachment.attach(config, to: net)
        var lines: [String] = []
        if let sam { lines.append("SAM \(sam.id) \(sam.version) (\(sam.options)), \(sam.attach), scheme \(sam.scheme)") }
        lines.append("\(spec): \(spec.blockCount) residual blocks in stages \(spec.blocksPerStage.map(String.init).joined(separator: "-")), input \(spec.imageSize)x\(spec.imageSize)x3, \(classes) classes")
        lines.append("name".padded(to: 14) + "kind".padded(to: 26) + "output".padded(to: 14) + "params".padded(to: 12) + "multiply-adds")
        for row in net.layerTable() {
            lines.append(row.name.padded(to: 14) + row.kind.padded(to: 26) + row.output.padded(to: 14) + (String(row.params)).padded(to: 12) + String(row.multiplyAdds))
        }
        for (s, stage) in net.stages.enumerated() {
            for (name, module) in stage.attachedModules { lines.append("layer\(s + 1).\(name)".padded(to: 14) + "shared by the stage".padded(to: 40) + String(module.parameterCount)) }
        }
        lines.append("total parameters: \(net.parameterCount)")
        lines.append(String(format: "multiply-adds per image: %.2f M forward (convolutions and classifier, direct count; attentions not counted); "
                            + "a training step does %.3f GFLOP per image", Double(net.forwardMultiplyAdds) / 1e6, Double(net.trainingFLOPs) / 1e9))
        return lines
    }

}
