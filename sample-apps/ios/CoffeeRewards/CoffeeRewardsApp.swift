import Covey
import SwiftUI

@main
struct CoffeeRewardsApp: App {
    @Environment(\.scenePhase) private var phase
    @StateObject private var model: RewardsModel

    init() {
        // A store that cannot be opened (Keychain item gone, disk damaged) is a fatal state
        // for this sample; a production app would offer "start over" via a fresh directory.
        let model: RewardsModel
        do {
            model = try RewardsModel.open()
        } catch {
            fatalError("Covey could not open the rewards store: \(error)")
        }
        _model = StateObject(wrappedValue: model)
        RoundScheduler.register(client: model.client)
    }

    var body: some Scene {
        WindowGroup {
            ContentView(model: model)
        }
        .onChange(of: phase) { newPhase in
            // Consent prompts come back whenever promptsNeeded() says so (terms changed,
            // consent expired or about to); checking on every activation is enough.
            if newPhase == .active { model.refresh() }
        }
    }
}

struct ContentView: View {
    @ObservedObject var model: RewardsModel

    var body: some View {
        TabView {
            NavigationStack { HomeView(model: model) }
                .tabItem { Label("Rewards", systemImage: "cup.and.saucer") }
            NavigationStack { PrivacyCenterView(model: model) }
                .tabItem { Label("Privacy", systemImage: "hand.raised") }
        }
        .sheet(item: Binding(get: { model.cards.first }, set: { _ in })) { card in
            ConsentSheet(model: model, card: card)
        }
        .onAppear { model.refresh() }
    }
}

/// Offers with their reasons, and the counter to ring up purchases.
struct HomeView: View {
    @ObservedObject var model: RewardsModel

    var body: some View {
        List {
            if let offers = model.offers {
                Section(offers.personalized ? "Picked for you" : "Popular today") {
                    ForEach(offers.offers, id: \.itemId) { offer in
                        VStack(alignment: .leading) {
                            Text(Menu.name(of: offer.itemId)).font(.headline)
                            Text(offer.reason).font(.caption)
                        }
                    }
                    if let note = offers.note { Text(note).font(.footnote) }
                }
            }
            Section("Order") {
                ForEach(Menu.items) { item in
                    Button("\(item.name) · \(Menu.price(item.priceCents))") { model.buy(item) }
                }
            }
        }
        .navigationTitle("Coffee Rewards")
    }
}
