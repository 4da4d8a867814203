"""The Layout features the Open Images view brought, on a small in-memory project: items with any
number of files (``ItemFile.many``), per-split folders of a layout grouped ``"all"``
(``ItemFile.by_split``) and files made from every split (``WholeFile``); and after a change, the
next version equals a fresh build and its stale paths cover every path that changed."""

from __future__ import annotations

from collections.abc import Sequence

from slyfs.formats.contract import Change, Generated, constant
from slyfs.formats.layout import ItemFile, Layout, LayoutView, SplitItems, WholeFile
from slyfs.formats.model import Annotation, Dataset, Item, Label, Project, ProjectMeta, Rectangle
from slyfs.formats.view import ViewOptions

BOX = Rectangle(0, 0, 1, 1)


def project_of(objects: dict[tuple[str, str], int]) -> Project:
    """Items keyed (dataset, name), each with that many boxes; its stamp is the count."""
    datasets = {}
    for (ds, name), n in sorted(objects.items()):
        datasets.setdefault(ds, []).append(Item(ds, name, None, f"{ds}/{name}.json", (n,)))  # type: ignore[arg-type]
    return Project("/src", ProjectMeta(()), tuple(Dataset(d, tuple(items)) for d, items in datasets.items()),
                   lambda item: Annotation(4, 4, (), (Label("c", BOX),) * objects[(item.dataset, item.name)]))


def layout(project: Project, options: ViewOptions) -> Layout:
    def node(kind: str, item: Item, name: str) -> Generated:
        data = f"{kind} {item.dataset}/{item.name} {name}".encode()
        return Generated((kind, item.dataset, item.name, item.fingerprint, name), constant(data))

    def boxes(item: Item, name: str) -> list[str]:
        return [f"{name.rpartition('.')[0]}_{k}.png" for k in range(len(project.annotation(item).labels))]

    def index(splits: Sequence[SplitItems]) -> Generated:
        data = "".join(f"{n}\n" for split in splits for n in split.names).encode()
        return Generated(("index", tuple(split.key for split in splits)), constant(data))

    return Layout(per_item=(ItemFile(lambda s: f"images/{s}", lambda i, n: node("image", i, n), by_split=True),
                            ItemFile(lambda s: f"masks/{s}", lambda i, n: node("mask", i, n), many=boxes,
                                     by_split=True)),
                  whole=(WholeFile("all.txt", index),), group_by="all")


def files(view: LayoutView) -> dict[str, bytes]:
    out = {}
    for path in view.walk():
        folder, _, name = path.rpartition("/")
        node = view.lookup(folder, name)
        assert isinstance(node, Generated)
        out[path] = node.render()
    return out


SOURCE = {("train", "a.png"): 2, ("train", "dup.png"): 0, ("val", "dup.png"): 1, ("val", "b.png"): 1}


def test_per_split_folders_several_files_per_item_and_a_whole_view_file() -> None:
    view = LayoutView(layout, project_of(SOURCE), ViewOptions())
    assert view.list("") == ["all.txt", "images", "masks"]
    assert view.list("images") == ["train", "val"]
    assert view.list("images/train") == ["a.png", "train__dup.png"]  # names unique over the whole view
    assert view.list("images/val") == ["b.png", "val__dup.png"]
    assert view.list("masks/train") == ["a_0.png", "a_1.png"]
    assert view.list("masks/val") == ["b_0.png", "val__dup_0.png"]
    got = files(view)
    assert got["masks/val/val__dup_0.png"] == b"mask val/dup.png val__dup_0.png"
    assert got["all.txt"] == b"a.png\ntrain__dup.png\nb.png\nval__dup.png\n"
    assert view.lookup("masks/train", "a_2.png") is None


def test_after_a_change_the_view_equals_a_fresh_build_and_stale_covers_it() -> None:
    before_project = project_of(SOURCE)
    before = LayoutView(layout, before_project, ViewOptions())
    old = files(before)
    edited = {**SOURCE, ("train", "a.png"): 1, ("val", "dup.png"): 3}
    after_project = project_of(edited)
    changed = {key: next(i for i in after_project.items() if (i.dataset, i.name) == key)
               for key in (("train", "a.png"), ("val", "dup.png"))}
    after = before.updated(after_project, Change(changed))
    new = files(after)
    assert new == files(LayoutView(layout, after_project, ViewOptions()))
    stale = set(after.stale(before, Change(changed)))
    moved = {p for p in old.keys() | new.keys() if old.get(p) != new.get(p)}
    assert moved == {"masks/train/a_1.png", "masks/val/val__dup_1.png", "masks/val/val__dup_2.png"}
    assert all(p in stale or p.rpartition("/")[0] in stale for p in moved)
    assert {"masks/train", "masks/val", "masks/train/a_0.png", "masks/val/val__dup_0.png"} <= stale  # new keys
    assert "all.txt" in stale  # its items' digest changed
