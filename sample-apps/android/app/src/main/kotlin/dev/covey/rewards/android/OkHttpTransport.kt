package dev.covey.rewards.android

import java.io.IOException
import java.io.InterruptedIOException
import java.util.concurrent.TimeUnit
import okhttp3.MediaType.Companion.toMediaTypeOrNull
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import org.covey.HttpMethod
import org.covey.Transport
import org.covey.TransportException
import org.covey.TransportRequest
import org.covey.TransportResponse

/**
 * Covey's foreign [Transport] over OkHttp: the app's HTTP stack (its TLS trust, certificate
 * pinning, proxy and connection pool). Any HTTP status is a response; only a request that got
 * no response throws. Bodies are bounded so a hostile server cannot exhaust memory.
 */
class OkHttpTransport(
    baseUrl: String,
    private val client: OkHttpClient = OkHttpClient.Builder()
        .connectTimeout(10, TimeUnit.SECONDS)
        .callTimeout(60, TimeUnit.SECONDS)
        .followRedirects(false)
        .build(),
    private val maxResponseBytes: Long = 256L shl 20,
) : Transport {
    private val base = baseUrl.trimEnd('/')

    override fun send(request: TransportRequest): TransportResponse {
        val builder = try {
            Request.Builder().url(base + request.path)
        } catch (e: IllegalArgumentException) {
            throw TransportException.Unreachable("bad server URL or path")
        }
        request.bearer?.let { builder.header("Authorization", "Bearer $it") }
        when (request.method) {
            HttpMethod.GET -> builder.get()
            HttpMethod.POST -> builder.post(request.body.toRequestBody(request.contentType?.toMediaTypeOrNull()))
        }
        try {
            client.newCall(builder.build()).execute().use { response ->
                val body = response.body
                if (body.contentLength() > maxResponseBytes) throw TransportException.TooLarge(maxResponseBytes.toULong())
                val bytes = body.source().use { source ->
                    // request(n) reads ahead; more than the bound means the body is too large.
                    if (source.request(maxResponseBytes + 1)) throw TransportException.TooLarge(maxResponseBytes.toULong())
                    source.readByteArray()
                }
                val retryAfterMs = response.header("Retry-After")?.trim()?.toLongOrNull()?.let { (it * 1000).toULong() }
                return TransportResponse(status = response.code.toUShort(), body = bytes, retryAfterMs = retryAfterMs)
            }
        } catch (e: InterruptedIOException) {
            throw TransportException.Timeout()
        } catch (e: IOException) {
            throw TransportException.Unreachable("the request failed (${e.javaClass.simpleName})")
        }
    }
}
