import pytest

@pytest.mark.parametrize("variant", ["zh_wait_en", "zh_then_blank", "zh_then_en_again", "zh_then_login"])
def test_debug(variant, new_page, login):
    page = new_page(1920, 1080)
    msgs = []
    page.on("console", lambda m: msgs.append(f"{m.type}: {m.text}"))
    page.on("framenavigated", lambda f: msgs.append(f"nav {f.url}") if f == page.main_frame else None)
    page.on("pageerror", lambda e: msgs.append(f"PAGEERROR {e} stack={e.stack}"))
    login(page, "viewer", "/login?next=/wall")
    if variant == "zh_wait_en":
        page.wait_for_selector(".wall-tiles .tile"); page.wait_for_timeout(5000)
        page.goto("/wall?lang=en")
    elif variant == "zh_then_blank":
        page.goto("/healthz")
    elif variant == "zh_then_en_again":
        page.goto("/wall?lang=en"); page.wait_for_selector(".wall-tiles .tile"); page.wait_for_timeout(3000)
        page.goto("/wall?lang=en")
    else:
        page.goto("/login")
    page.wait_for_timeout(4000)
    print("\n", variant, page.url, page.errors, [m for m in msgs if "GL Driver" not in m])
