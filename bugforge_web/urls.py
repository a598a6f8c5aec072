from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from bugforge_web import views
from episodes.dashboards import views as dashboard_views

urlpatterns = [
    path("", views.home, name="home"),
    path("counts/", views.home_counts, name="home_counts"),
    path("dashboards/", dashboard_views.dashboards, name="dashboards"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("episodes.urls")),
    path("training/", include("training.urls")),
    # django-rq's dashboard checks is_staff itself (staff_member_required); before admin/,
    # whose catch-all would otherwise swallow it.
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
