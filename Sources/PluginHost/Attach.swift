import Foundation
import Models
import NN
import Tensor

/// Attaches a SAM plugin to a ResNet's blocks according to a scheme.
public enum SAMAttacher {
    /// Attaches `plugin` at every block whose bit is set; returns the instances created.
    /// Stateful SAMs (DIA) always get one instance per stage with a state chain, as their
    /// state runs through the stage. Parameters are initialised from `seed`; the instances
    /// share one `PluginHostContext` seeded from it and the network's `PassContext`.
    @discardableResult
    public static func attach(_ plugin: SAMPlugin, to net: ResNet, mode: AttachMode, scheme: Scheme, seed: UInt64) throws -> [SAMInstance] {
        guard scheme.stageSizes == net.spec.blocksPerStage else {
            throw LTHError("scheme \(scheme) is for stages \(scheme.stageSizes), the model has \(net.spec.blocksPerStage)")
        }
        var rng = RNG(seed: seed ^ 0x5A5A_1234)
        let host = PluginHostContext(seed: seed)
        var instances: [SAMInstance] = []
        let name = plugin.id
        for (s, stage) in net.stages.enumerated() {
            let channels = stage.blocks[0].outChannels
            var shared: SAMInstance? = nil
            var chain: StageStateChain? = nil
            let first = scheme.positions.first { $0.stage == s }!.index
            stage.attachedModules = []
            for (b, block) in stage.blocks.enumerated() {
                block.attention = nil
                block.attachedModules = []
                guard scheme.bits[first + b] else { continue }
                let instance: SAMInstance
                if let sh = shared {
                    instance = sh
                } else {
                    instance = try plugin.instantiate(channels: channels, rng: &rng, host: host)
                    instances.append(instance)
                    let stateful = try instance.layout([1, 8, 8, channels]).state_count > 0
                    if stateful || mode == .fullShare {
                        shared = instance
                        chain = stateful ? StageStateChain() : nil
                        stage.attachedModules = [(name, instance)]
                    } else {
                        block.attachedModules = [(name, instance)]
                    }
                }
                block.attention = SAMSite(instance: instance, position: b, chain: chain, passes: net.passes, gradients: net.gradients,
                                          label: "layer\(s + 1).\(b)", context: net.context)
            }
        }
        return instances
    }
}
