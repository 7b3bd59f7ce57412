"""Review decisions on proposals (`review.decisions`): connection decisions through the one write path,
rejected pairs that never come back, and two reviewers on one proposal.

Uses the hand-made signatures and collection of `test_clustering_runs` (known clusters, no model needed).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotations import knowledge as knowledge_store
from annotations.models import Connection, ConnectionDecision
from clustering.algorithms import ClusteringParams
from clustering.models import Proposal, ProposalStatus
from clustering.runs import run_clustering
from review.decisions import AlreadyDecided, RejectedPairInside, decide

from .test_clustering_runs import GROUPS, add_version, collection, pk, proposal_with, signatures  # noqa: F401


@pytest.mark.django_db
def test_rejected_pairs_never_come_back_in_later_runs(collection):  # noqa: F811
    reviewer = User.objects.create_user("historian")
    first = run_clustering(collection, ClusteringParams())
    decide(proposal_with(GROUPS["G2"], first).pk, "reject", reviewer)
    g1 = proposal_with(GROUPS["G1"], first)
    decide(g1.pk, "confirm_exclusive", reviewer, checked=[pk(0), pk(1), pk(2)])  # 3 is wrong
    negative = Connection.objects.filter(type="NEGATIVE")
    assert negative.count() == 3 + 3  # the G2 triangle, and 3 against each of 0, 1, 2
    decision = negative.first().latest
    assert decision.source == "review" and decision.user == reviewer
    assert decision.context["run"] == first.pk and decision.context["model_version"] == 0

    # Round 2: a new model version whose signatures still group the same artworks.
    second = run_clustering(add_version(1, signatures(2)), ClusteringParams())
    assert second.cluster_count == 3
    assert proposal_with(GROUPS["G2"], second) is None and proposal_with(GROUPS["G1"], second) is None
    assert second.metrics["already_known"] == 2
    # One pair rejected inside an otherwise new cluster: the cluster is proposed, flagged, and confirming it
    # links everything except the rejected pair.
    third_vectors = signatures(5, groups={**GROUPS, "G2": [4, 5, 6, 7]})  # artwork 4 joins G2
    third = run_clustering(add_version(2, third_vectors), ClusteringParams())
    flagged = proposal_with([4, 5, 6, 7], third)
    assert flagged.kind == "contains_rejected" and len(flagged.rejected_pairs) == 3
    with pytest.raises(RejectedPairInside, match="rejected"):
        decide(flagged.pk, "confirm", reviewer)  # 4 would link 5, 6 and 7 to each other through itself
    decide(flagged.pk, "confirm", reviewer, checked=[pk(4), pk(5)])
    known = knowledge_store.load()
    assert known.component_of[pk(4)] == known.component_of[pk(5)]
    assert pk(6) not in known.component_of and pk(7) not in known.component_of
    for a, b in [(5, 6), (5, 7), (6, 7)]:
        pair = sorted([pk(a), pk(b)])
        assert Connection.objects.get(artwork_a_id=pair[0], artwork_b_id=pair[1]).type == "NEGATIVE"


@pytest.mark.django_db
def test_second_reviewer_sees_the_first_decision(collection):  # noqa: F811
    first, second = User.objects.create_user("first"), User.objects.create_user("second")
    proposal = run_clustering(collection, ClusteringParams()).proposals.first()
    decide(proposal.pk, "skip", first)
    with pytest.raises(AlreadyDecided, match="first already decided"):
        decide(proposal.pk, "reject", second)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SKIPPED and proposal.decided_by == first
    with pytest.raises(ValueError, match="not members"):
        decide(Proposal.objects.exclude(pk=proposal.pk).first().pk, "confirm", first, checked=[pk(19)])


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_the_same_moment_lose_nothing(collection):  # noqa: F811
    """Two threads (two database connections) decide the same proposal at once: one decision wins whole,
    the other is told, and no pair is written twice."""
    import threading

    from django.db import connection as default_connection

    run = run_clustering(collection, ClusteringParams())
    proposal = proposal_with(GROUPS["G1"], run)
    users = [User.objects.create_user("first"), User.objects.create_user("second")]
    outcomes: dict[str, str] = {}
    start = threading.Barrier(2)

    def review(user, action):
        try:
            start.wait()
            decide(proposal.pk, action, user)
            outcomes[user.username] = "decided"
        except AlreadyDecided:
            outcomes[user.username] = "told"
        finally:
            default_connection.close()

    threads = [
        threading.Thread(target=review, args=(users[0], "confirm")),
        threading.Thread(target=review, args=(users[1], "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["decided", "told"]
    proposal.refresh_from_db()
    winner = proposal.decided_by.username
    assert outcomes[winner] == "decided"
    written = ConnectionDecision.objects.filter(context__proposal=proposal.pk)
    assert written.exists() and {d.user.username for d in written} == {winner}
    assert {d.type for d in written} == ({"POSITIVE"} if winner == "first" else {"NEGATIVE"})
