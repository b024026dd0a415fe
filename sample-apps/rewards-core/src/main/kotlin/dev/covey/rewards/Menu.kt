package dev.covey.rewards

/** One thing the coffee shop sells. [id] is the catalog's item id (the server's items CSV). */
data class MenuItem(val id: String, val name: String, val category: String, val priceCents: Long)

/**
 * The coffee shop's menu: the catalog the population's model is trained over. The same list
 * is written as the server's `items.csv` (`item_id,category,price`), see [catalogCsv].
 */
object Menu {
    val items: List<MenuItem> = listOf(
        MenuItem("espresso", "Espresso", "coffee", 250),
        MenuItem("cappuccino", "Cappuccino", "coffee", 380),
        MenuItem("flat-white", "Flat white", "coffee", 400),
        MenuItem("oat-latte", "Oat latte", "coffee", 450),
        MenuItem("cold-brew", "Cold brew", "coffee", 420),
        MenuItem("chai-latte", "Chai latte", "tea", 410),
        MenuItem("green-tea", "Green tea", "tea", 280),
        MenuItem("earl-grey", "Earl Grey", "tea", 260),
        MenuItem("croissant", "Butter croissant", "bakery", 300),
        MenuItem("pain-au-chocolat", "Pain au chocolat", "bakery", 340),
        MenuItem("banana-bread", "Banana bread", "bakery", 360),
        MenuItem("cinnamon-roll", "Cinnamon roll", "bakery", 390),
        MenuItem("blueberry-muffin", "Blueberry muffin", "bakery", 330),
        MenuItem("avocado-toast", "Avocado toast", "food", 850),
        MenuItem("breakfast-bagel", "Breakfast bagel", "food", 720),
        MenuItem("tomato-soup", "Tomato soup", "food", 650),
        MenuItem("house-beans", "House beans 250 g", "retail", 1400),
        MenuItem("travel-mug", "Travel mug", "retail", 1800),
        MenuItem("hot-chocolate", "Hot chocolate", "other", 390),
        MenuItem("lemonade", "Lemonade", "other", 320),
    )

    private val byId = items.associateBy { it.id }

    /** The item with this id, or null (an id the shop no longer sells). */
    fun find(id: String): MenuItem? = byId[id]

    /** A display name for an item id: the menu name, else the id itself. */
    fun nameOf(id: String): String = byId[id]?.name ?: id

    /** The server's catalog file for this menu. */
    fun catalogCsv(): String =
        "item_id,category,price\n" + items.joinToString("") { "${it.id},${it.category},${it.priceCents}\n" }

    /** "$4.50" */
    fun price(cents: Long): String = "$%d.%02d".format(cents / 100, cents % 100)
}
