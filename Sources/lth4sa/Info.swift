import ArgumentParser
import Data
import Experiments
import Models
import Training

/// `lth4sa info`: layer table and parameter count of a model.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's layer table and parameter count.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(parsing: .unconditional, help: "Classes of the classifier.") var classes: Int = 10
    @OptionGroup var samOptions: SAMOptions

    func run() throws {
        guard classes >= 2 && classes <= DataSource.maxClasses else {
            throw ValidationError("--classes must be in 2...\(DataSource.maxClasses), got \(classes)")
        }
        let spec = try ModelSpec(modelOptions.model)
        let net = ResNet(spec, classes: classes, seed: 0)
        var config = RunConfig()
        samOptions.apply(to: &config)
        let sam = try SAMAttachment.attach(config, to: net)
        if let id = sam["sam.id"] {
            print("SAM \(id) \(sam["sam.version"] ?? "") (\(sam["sam.options"] ?? "")), \(config.attach), scheme \(sam["scheme"] ?? "")")
        }
        print("\(spec): \(spec.blockCount) residual blocks in stages \(spec.blocksPerStage.map(String.init).joined(separator: "-")), input \(spec.imageSize)x\(spec.imageSize)x3, \(classes) classes")
        print(pad("name", 14) + pad("kind", 26) + pad("output", 14) + pad("params", 12) + "multiply-adds")
        for row in net.layerTable() {
            print(pad(row.name, 14) + pad(row.kind, 26) + pad(row.output, 14) + pad(String(row.params), 12) + String(row.multiplyAdds))
        }
        for (s, stage) in net.stages.enumerated() {
            for (name, module) in stage.attachedModules { print(pad("layer\(s + 1).\(name)", 14) + pad("shared by the stage", 40) + String(module.parameterCount)) }
        }
        print("total parameters: \(net.parameterCount)")
        print(String(format: "multiply-adds per image: %.2f M forward (convolutions and classifier, direct count; attentions not counted); "
                     + "a training step does %.3f GFLOP per image", Double(net.forwardMultiplyAdds) / 1e6, Double(net.trainingFLOPs) / 1e9))
    }
}
