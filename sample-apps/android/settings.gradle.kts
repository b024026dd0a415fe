// Coffee Shop Rewards for Android (Jetpack Compose). NOT BUILT BY THE PROJECT: its machines
// have no Android SDK or Gradle. See README.md for what is compiled elsewhere (the shared
// journey and the Kotlin bindings, on the JVM) and how to build this app.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "coffee-rewards"
include(":app")
