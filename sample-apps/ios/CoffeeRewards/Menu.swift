import Foundation

/// One thing the coffee shop sells; `id` is the catalog's item id (the server's items CSV).
struct MenuItem: Identifiable, Hashable {
    let id: String
    let name: String
    let category: String
    let priceCents: Int64
}

/// The shop's menu. The same list as `sample-apps/rewards-core/.../Menu.kt` (Kotlin cannot be
/// shared with Swift; the console app's tests check the Kotlin copy against a real server).
enum Menu {
    static let items: [MenuItem] = [
        MenuItem(id: "espresso", name: "Espresso", category: "coffee", priceCents: 250),
        MenuItem(id: "cappuccino", name: "Cappuccino", category: "coffee", priceCents: 380),
        MenuItem(id: "flat-white", name: "Flat white", category: "coffee", priceCents: 400),
        MenuItem(id: "oat-latte", name: "Oat latte", category: "coffee", priceCents: 450),
        MenuItem(id: "cold-brew", name: "Cold brew", category: "coffee", priceCents: 420),
        MenuItem(id: "chai-latte", name: "Chai latte", category: "tea", priceCents: 410),
        MenuItem(id: "green-tea", name: "Green tea", category: "tea", priceCents: 280),
        MenuItem(id: "earl-grey", name: "Earl Grey", category: "tea", priceCents: 260),
        MenuItem(id: "croissant", name: "Butter croissant", category: "bakery", priceCents: 300),
        MenuItem(id: "pain-au-chocolat", name: "Pain au chocolat", category: "bakery", priceCents: 340),
        MenuItem(id: "banana-bread", name: "Banana bread", category: "bakery", priceCents: 360),
        MenuItem(id: "cinnamon-roll", name: "Cinnamon roll", category: "bakery", priceCents: 390),
        MenuItem(id: "blueberry-muffin", name: "Blueberry muffin", category: "bakery", priceCents: 330),
        MenuItem(id: "avocado-toast", name: "Avocado toast", category: "food", priceCents: 850),
        MenuItem(id: "breakfast-bagel", name: "Breakfast bagel", category: "food", priceCents: 720),
        MenuItem(id: "tomato-soup", name: "Tomato soup", category: "food", priceCents: 650),
        MenuItem(id: "house-beans", name: "House beans 250 g", category: "retail", priceCents: 1400),
        MenuItem(id: "travel-mug", name: "Travel mug", category: "retail", priceCents: 1800),
        MenuItem(id: "hot-chocolate", name: "Hot chocolate", category: "other", priceCents: 390),
        MenuItem(id: "lemonade", name: "Lemonade", category: "other", priceCents: 320),
    ]

    static func find(_ id: String) -> MenuItem? { items.first { $0.id == id } }
    static func name(of id: String) -> String { find(id)?.name ?? id }
    static func price(_ cents: Int64) -> String { String(format: "$%d.%02d", cents / 100, cents % 100) }
}
