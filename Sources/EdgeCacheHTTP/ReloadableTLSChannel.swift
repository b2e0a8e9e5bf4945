import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// The TLS context a listener gives each connection it accepts. ``replace(with:)`` swaps it for
/// connections accepted from then on; connections already open keep the context (certificate,
/// key, trusted CA) they were accepted with, so a reload drops nothing.
package final class TLSContextHolder: Sendable {
    private let context: Mutex<NIOSSLContext>

    package init(_ configuration: TLSConfiguration) throws {
        context = Mutex(try NIOSSLContext(configuration: configuration))
    }

    /// The context for the next connection.
    package var current: NIOSSLContext { context.withLock { $0 } }

    /// Makes an already built context current.
    package func replace(with next: NIOSSLContext) {
        context.withLock { $0 = next }
    }
}

/// Like HummingbirdTLS's `TLSChannel`, but reads the TLS context from a ``TLSContextHolder``
/// for every new connection, so certificates can be replaced while the server runs.
package struct ReloadableTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    package typealias Value = BaseChannel.Value

    let base: BaseChannel
    let contexts: TLSContextHolder

    package init(_ base: BaseChannel, contexts: TLSContextHolder) {
        self.base = base
        self.contexts = contexts
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = contexts.current
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            self.base.setup(channel: channel, logger: logger)
        }
    }

    package func handle(value: BaseChannel.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ReloadableTLSChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    package var responder: HTTPChannelHandler.Responder { base.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS whose context comes from `contexts` for each new connection.
    package static func reloadableTLS(http1 configuration: HTTP1Channel.Configuration, contexts: TLSContextHolder) -> HTTPServerBuilder {
        .init { responder in
            ReloadableTLSChannel(HTTP1Channel(responder: responder, configuration: configuration), contexts: contexts)
        }
    }
}
