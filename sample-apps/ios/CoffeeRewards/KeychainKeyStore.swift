import CryptoKit
import Covey
import Foundation
import Security

/// Covey's data key wrapped with AES-256-GCM under a key kept in the iOS Keychain.
///
/// The wrapping key is a Keychain item readable after the first unlock (so the round task can
/// open the store in the background) and never migrates to another device or a backup
/// (`ThisDeviceOnly`): a restored backup of the encrypted store cannot be opened elsewhere.
/// `destroyKey` deletes the item, which crypto-shreds the store on erase.
///
/// Wrapped format, identical to the Kotlin `SecretKeyWrapping` tested on the JVM:
/// `[0x01][12-byte nonce][ciphertext][16-byte tag]`, the key id as associated data.
final class KeychainKeyStore: KeyStore, @unchecked Sendable {
    private let service: String
    private let lock = NSLock()

    init(service: String = "dev.covey.rewards.datakey") {
        self.service = service
    }

    func wrapKey(keyId: String, key: Data) throws -> Data {
        let secret = try wrappingKey(keyId: keyId, create: true)
        do {
            let box = try AES.GCM.seal(key, using: secret, authenticating: Data(keyId.utf8))
            guard let combined = box.combined else { throw KeyStoreError.Unavailable(reason: "AES-GCM produced no output") }
            return Data([Self.version]) + combined
        } catch let error as KeyStoreError {
            throw error
        } catch {
            throw KeyStoreError.Unavailable(reason: "AES-GCM sealing failed")
        }
    }

    func unwrapKey(keyId: String, wrapped: Data) throws -> Data {
        guard wrapped.count > 1 + 12 + 16, wrapped.first == Self.version else { throw KeyStoreError.WrongKey }
        let secret = try wrappingKey(keyId: keyId, create: false)
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped.dropFirst())
            return try AES.GCM.open(box, using: secret, authenticating: Data(keyId.utf8))
        } catch {
            throw KeyStoreError.WrongKey
        }
    }

    func destroyKey(keyId: String) throws {
        lock.lock(); defer { lock.unlock() }
        let status = SecItemDelete(query(keyId) as CFDictionary)
        // Deleting a missing key is fine: erasing twice is not an error.
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw KeyStoreError.Unavailable(reason: "Keychain delete failed (\(status))")
        }
    }

    private func wrappingKey(keyId: String, create: Bool) throws -> SymmetricKey {
        lock.lock(); defer { lock.unlock() }
        var read = query(keyId)
        read[kSecReturnData as String] = true
        read[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        switch SecItemCopyMatching(read as CFDictionary, &item) {
        case errSecSuccess:
            guard let data = item as? Data, data.count == 32 else { throw KeyStoreError.WrongKey }
            return SymmetricKey(data: data)
        case errSecItemNotFound where create:
            let key = SymmetricKey(size: .bits256)
            var add = query(keyId)
            add[kSecValueData as String] = key.withUnsafeBytes { Data($0) }
            add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            let status = SecItemAdd(add as CFDictionary, nil)
            guard status == errSecSuccess else { throw KeyStoreError.Unavailable(reason: "Keychain add failed (\(status))") }
            return key
        case errSecItemNotFound:
            throw KeyStoreError.KeyNotFound
        case errSecInteractionNotAllowed:
            throw KeyStoreError.Unavailable(reason: "the device has not been unlocked since it started")
        case let status:
            throw KeyStoreError.Unavailable(reason: "Keychain read failed (\(status))")
        }
    }

    private func query(_ keyId: String) -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: keyId,
        ]
    }

    private static let version: UInt8 = 1
}
