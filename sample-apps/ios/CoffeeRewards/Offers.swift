import Covey
import Foundation

/// One offer on screen and, in plain words, why (the Swift twin of the Kotlin `Offers`).
struct Offer {
    let itemId: String
    let reason: String
}

struct OfferList {
    let personalized: Bool
    let note: String?
    let offers: [Offer]
}

enum Offers {
    /// The top `count` offers, or nil while the shop's model has not been downloaded yet.
    static func load(_ client: CoveyClient, count: UInt32) throws -> OfferList? {
        guard try client.modelVersion() != nil else { return nil }
        let recs = try client.recommend(k: count)
        let offers = try recs.items.map { rec in
            Offer(itemId: rec.itemId, reason: reason(try client.explain(itemId: rec.itemId)))
        }
        return OfferList(personalized: recs.personalized, note: recs.fallback.map(note), offers: offers)
    }

    /// "Because you bought Oat latte and Butter croissant." — or why no personal data was used.
    static func reason(_ why: Explanation) -> String {
        guard !why.because.isEmpty else {
            return "Popular with members overall; no personal data was used for this suggestion."
        }
        // One verb per kind of event: "bought Oat latte and Croissant and redeemed Muffin".
        var verbs: [String] = []
        var names: [String: [String]] = [:]
        for c in why.because {
            let v = verb(c.kind)
            if names[v] == nil { verbs.append(v) }
            names[v, default: []].append(Menu.name(of: c.itemId))
        }
        let parts = verbs.map { "\($0) \(names[$0]!.joined(separator: " and "))" }
        return "Because you " + parts.joined(separator: " and ") + "."
    }

    static func note(_ reason: FallbackReason) -> String {
        switch reason {
        case .noConsent: return "Personal offers are off, so your history was not used."
        case let .tooLittleHistory(items, needed): return "Buy \(needed - items) more different item(s) for offers picked for you."
        }
    }

    private static func verb(_ kind: EventKind?) -> String {
        switch kind {
        case .purchase?: return "bought"
        case .redemption?: return "redeemed"
        case .visit?: return "visited"
        case .offerClick?: return "opened an offer for"
        case .offerView?: return "viewed an offer for"
        case nil: return "chose"
        }
    }
}
