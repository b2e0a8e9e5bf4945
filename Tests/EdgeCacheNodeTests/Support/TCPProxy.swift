import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A loopback TCP proxy that a test can cut: every open connection is closed at once, as a
/// broken WAN link would do to the edge's change stream.
final class TCPProxy: Sendable {
    private let connections = NIOLockedValueBox<[any Channel]>([])
    private let blocked = NIOLockedValueBox(false)
    private let server: any Channel
    let port: Int

    init(targetPort: Int) async throws {
        let connections = self.connections
        let blocked = self.blocked
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                if blocked.withLockedValue({ $0 }) { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop).connect(host: "127.0.0.1", port: targetPort).flatMap { outbound in
                    connections.withLockedValue { $0 += [inbound, outbound] }
                    return inbound.pipeline.addHandler(Relay(partner: outbound)).flatMap {
                        outbound.pipeline.addHandler(Relay(partner: inbound))
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = server.localAddress!.port!
    }

    /// Closes every connection through the proxy (new ones are still accepted).
    func cutAll() {
        let open = connections.withLockedValue { list -> [any Channel] in
            defer { list.removeAll() }
            return list
        }
        for channel in open { channel.close(promise: nil) }
    }

    /// Cuts every connection and refuses new ones until ``unblock()``: a partitioned link.
    func block() {
        blocked.withLockedValue { $0 = true }
        cutAll()
    }

    func unblock() { blocked.withLockedValue { $0 = false } }

    func close() async {
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
