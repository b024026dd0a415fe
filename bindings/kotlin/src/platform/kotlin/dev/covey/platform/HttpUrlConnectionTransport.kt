package dev.covey.platform

import java.io.ByteArrayOutputStream
import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.SocketTimeoutException
import java.net.URI
import java.net.URISyntaxException
import org.covey.HttpMethod
import org.covey.Transport
import org.covey.TransportException
import org.covey.TransportRequest
import org.covey.TransportResponse

/**
 * Covey's foreign [Transport] over the JDK's `HttpURLConnection` (also on Android): the host's
 * HTTP stack, so proxies, TLS trust and pinning stay the app's. Any HTTP status is a response;
 * only a request that got no response is a [TransportException]. Bodies are bounded by
 * [maxResponseBytes]; error texts name the failure class, never a URL with a token in it.
 */
class HttpUrlConnectionTransport(
    baseUrl: String,
    private val connectTimeoutMs: Int = 10_000,
    private val readTimeoutMs: Int = 60_000,
    private val maxResponseBytes: Long = 256L shl 20,
) : Transport {
    private val base = baseUrl.trimEnd('/')

    override fun send(request: TransportRequest): TransportResponse {
        val url = try {
            URI(base + request.path).toURL()
        } catch (e: URISyntaxException) {
            throw TransportException.Unreachable("bad server URL or path")
        } catch (e: IllegalArgumentException) {
            throw TransportException.Unreachable("bad server URL or path")
        }
        val conn = try {
            url.openConnection() as HttpURLConnection
        } catch (e: IOException) {
            throw TransportException.Unreachable("could not open a connection (${e.javaClass.simpleName})")
        }
        try {
            conn.connectTimeout = connectTimeoutMs
            conn.readTimeout = readTimeoutMs
            conn.instanceFollowRedirects = false
            conn.requestMethod = when (request.method) {
                HttpMethod.GET -> "GET"
                HttpMethod.POST -> "POST"
            }
            request.bearer?.let { conn.setRequestProperty("Authorization", "Bearer $it") }
            request.contentType?.let { conn.setRequestProperty("Content-Type", it) }
            if (request.method == HttpMethod.POST) {
                conn.doOutput = true
                conn.setFixedLengthStreamingMode(request.body.size)
                conn.outputStream.use { it.write(request.body) }
            }
            val status = conn.responseCode
            val body = (if (status >= 400) conn.errorStream else conn.inputStream)?.use(::readBounded) ?: ByteArray(0)
            val retryAfterMs = conn.getHeaderField("Retry-After")?.trim()?.toLongOrNull()?.let { (it * 1000).toULong() }
            return TransportResponse(status = status.toUShort(), body = body, retryAfterMs = retryAfterMs)
        } catch (e: SocketTimeoutException) {
            throw TransportException.Timeout()
        } catch (e: IOException) {
            throw TransportException.Unreachable("the request failed (${e.javaClass.simpleName})")
        } finally {
            conn.disconnect()
        }
    }

    private fun readBounded(input: InputStream): ByteArray {
        val out = ByteArrayOutputStream()
        val buffer = ByteArray(64 * 1024)
        while (true) {
            val n = input.read(buffer)
            if (n < 0) return out.toByteArray()
            if (out.size() + n > maxResponseBytes) throw TransportException.TooLarge(maxResponseBytes.toULong())
            out.write(buffer, 0, n)
        }
    }
}
