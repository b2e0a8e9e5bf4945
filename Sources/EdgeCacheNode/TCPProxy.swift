import NIOCore
import NIOPosix
import Synchronization

/// A loopback TCP proxy that can be cut: every open connection is closed at once, as a broken
/// WAN link would do to the edge's change stream. The demo puts one between its edge and origin
/// (`edgecache demo link down|up`); the tests use it to partition a pair.
package final class TCPProxy: Sendable {
    /// Shared with the channel initializer (a `Mutex` cannot be copied into a closure).
    private final class Shared: Sendable {
        let connections = Mutex<[any Channel]>([])
        let blocked = Mutex(false)
    }
    private let shared = Shared()
    private let server: any Channel
    /// The port it listens on (127.0.0.1).
    package let port: Int

    /// Listens on 127.0.0.1:`port` (0: any free port) and forwards to 127.0.0.1:`targetPort`.
    package init(targetPort: Int, port: Int = 0) async throws {
        let shared = self.shared
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                if shared.blocked.withLock({ $0 }) { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop).connect(host: "127.0.0.1", port: targetPort).flatMap { outbound in
                    shared.connections.withLock { $0 += [inbound, outbound] }
                    return inbound.pipeline.addHandler(Relay(partner: outbound)).flatMap {
                        outbound.pipeline.addHandler(Relay(partner: inbound))
                    }
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        self.port = server.localAddress!.port!
    }

    /// Whether new connections are refused (``block()``).
    package var isBlocked: Bool { shared.blocked.withLock { $0 } }

    /// Closes every connection through the proxy (new ones are still accepted).
    package func cutAll() {
        let open = shared.connections.withLock { list -> [any Channel] in
            defer { list.removeAll() }
            return list
        }
        for channel in open { channel.close(promise: nil) }
    }

    /// Cuts every connection and refuses new ones until ``unblock()``: a partitioned link.
    package func block() {
        shared.blocked.withLock { $0 = true }
        cutAll()
    }

    /// Accepts new connections again.
    package func unblock() { shared.blocked.withLock { $0 = false } }

    /// Cuts every connection and stops listening.
    package func close() async {
        cutAll()
        try? await server.close()
    }

    final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let partner: any Channel
        init(partner: any Channel) { self.partner = partner }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            partner.close(promise: nil)
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
